// Read-only mapping of a whole file, for the importers (internal to replay/import).
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include "schema/result.h"

namespace es::import {

class MappedFile {
 public:
  static Result<MappedFile> open(const std::string& path) {
    MappedFile m;
    m.fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (m.fd_ < 0) return Error{"cannot read trace file '" + path + "': " + std::strerror(errno) + "; check the path."};
    struct stat st {};
    if (::fstat(m.fd_, &st) != 0 || !S_ISREG(st.st_mode))
      return Error{"trace file '" + path + "' is not a regular file; give a trace file."};
    m.size_ = static_cast<size_t>(st.st_size);
    if (m.size_ > 0) {
      void* p = ::mmap(nullptr, m.size_, PROT_READ, MAP_PRIVATE, m.fd_, 0);
      if (p == MAP_FAILED) return Error{"cannot map trace file '" + path + "': " + std::strerror(errno) + "."};
      m.data_ = static_cast<const char*>(p);
    }
    return m;
  }
  MappedFile() = default;
  MappedFile(MappedFile&& o) noexcept { swap(o); }
  MappedFile& operator=(MappedFile&& o) noexcept {
    swap(o);
    return *this;
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<char*>(data_), size_);
    if (fd_ >= 0) ::close(fd_);
  }
  std::string_view text() const { return {data_ ? data_ : "", size_}; }
  // Drops the pages of [0, end) from this process's memory (they are clean file pages: reading
  // them again faults them back in from the page cache). An importer that has read that far
  // calls it so its resident size stays bounded however large the file (issue #18).
  void release_before(size_t end) const {
    static const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    end = std::min(end, size_) / page * page;
    if (!data_ || end <= released_) return;
    (void)::madvise(const_cast<char*>(data_) + released_, end - released_, MADV_DONTNEED);
    released_ = end;
  }
  void rewind() const { released_ = 0; }  // a new pass over the text

 private:
  void swap(MappedFile& o) {
    std::swap(fd_, o.fd_);
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(released_, o.released_);
  }
  int fd_ = -1;
  const char* data_ = nullptr;
  size_t size_ = 0;
  mutable size_t released_ = 0;
};

}  // namespace es::import
