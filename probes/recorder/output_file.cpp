#include "probes/recorder/output_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

namespace es::recorder {

namespace {

std::string quote_path(const std::string& p) { return "'" + p + "'"; }

// Follows the chain of symlinks at `path` (the last component only, as open(2) would) and
// says whether any link points into /proc or /dev/fd: /dev/stdout -> /proc/self/fd/1 names
// an open file description, which is written as a stream, never replaced.
bool links_into_proc(const std::string& path) {
  std::string cur = path;
  for (int hop = 0; hop < 40; ++hop) {
    char buf[PATH_MAX];
    const ssize_t n = ::readlink(cur.c_str(), buf, sizeof buf - 1);
    if (n < 0) return false;
    std::string target(buf, static_cast<size_t>(n));
    if (target.rfind("/proc/", 0) == 0 || target.rfind("/dev/fd/", 0) == 0) return true;
    if (target.empty() || target[0] != '/') {
      const size_t slash = cur.rfind('/');
      target = (slash == std::string::npos ? std::string() : cur.substr(0, slash + 1)) + target;
    }
    cur = target;
  }
  return false;
}

std::string realpath_or(const std::string& path) {
  char* r = ::realpath(path.c_str(), nullptr);
  if (!r) return path;
  std::string s(r);
  std::free(r);
  return s;
}

}  // namespace

Result<OutputTarget> inspect_output(const std::string& path) {
  OutputTarget t;
  t.path = path;
  struct stat lst {};
  if (::lstat(path.c_str(), &lst) != 0) return t;  // missing (or unreachable: creating it says why)
  const bool is_link = S_ISLNK(lst.st_mode);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (is_link && err == ENOENT) {
      char buf[PATH_MAX];
      const ssize_t n = ::readlink(path.c_str(), buf, sizeof buf - 1);
      const std::string target = n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string("?");
      return make_error(quote_path(path) + " is a symbolic link to " + quote_path(target) +
                        ", which does not exist; give the file name itself or remove the link.");
    }
    return make_error("cannot use " + quote_path(path) + " as the output (" + std::strerror(err) +
                      "); choose another name.");
  }
  if (S_ISREG(st.st_mode)) {
    if (is_link && links_into_proc(path)) {
      t.kind = OutputKind::Stream;
      t.what = "a link to an open file descriptor";
      return t;
    }
    t.kind = OutputKind::Regular;
    if (is_link) t.path = realpath_or(path);  // replace the file the link names; the link stays
    return t;
  }
  if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) {
    t.kind = OutputKind::Stream;
    t.what = S_ISCHR(st.st_mode) ? "a character device" : "a FIFO (named pipe)";
    return t;
  }
  if (S_ISDIR(st.st_mode)) return make_error(quote_path(path) + " is a directory; give a file name for the output.");
  if (S_ISBLK(st.st_mode))
    return make_error(quote_path(path) + " is a block device; exitscope writes files, not disks: give a file name.");
  return make_error(quote_path(path) + " is a socket or other special file, not a regular file; give a file name.");
}

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {
  }, sb{};
  if (::stat(a.c_str(), &sa) != 0 || ::stat(b.c_str(), &sb) != 0) return false;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

std::string lock_holder(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return {};
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return {};
  // A shared lock conflicts only with the recorder's exclusive one; two checkers never clash.
  const bool free = ::flock(fd, LOCK_SH | LOCK_NB) == 0;
  ::close(fd);  // also drops the shared lock just taken
  if (free) return {};
  // /proc/locks: "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF" (device as hex major:minor,
  // inode in decimal; fs/locks.c lock_get_status). Lines with "->" are waiters, not holders.
  std::ifstream locks("/proc/locks");
  std::string line;
  char want[64];
  std::snprintf(want, sizeof want, "%02x:%02x:%llu", major(st.st_dev), minor(st.st_dev),
                static_cast<unsigned long long>(st.st_ino));
  while (std::getline(locks, line)) {
    if (line.find("->") != std::string::npos || line.find("FLOCK") == std::string::npos) continue;
    std::istringstream in(line);
    std::string id, type, advisory, mode, pid, dev;
    if (!(in >> id >> type >> advisory >> mode >> pid >> dev) || dev != want || mode != "WRITE") continue;
    std::string comm;
    std::ifstream c("/proc/" + pid + "/comm");
    std::getline(c, comm);
    return "process " + pid + (comm.empty() ? std::string() : " (" + comm + ")");
  }
  return "another process";
}

std::string stream_refusal(const std::string& path, const std::string& what) {
  return quote_path(path) + " is " + what +
         ", not a regular file; a recording is a SQLite database and cannot be written to a device or a pipe: give "
         "a file name.";
}

std::string in_progress_sentence(const std::string& path, const std::string& holder) {
  return quote_path(path) + " is a recording still being written by " + holder +
         "; wait until it finishes (or stop it), or choose another name.";
}

Result<RecordingLock> RecordingLock::create(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
  if (fd < 0) {
    const int err = errno;
    if (err == EEXIST) {
      if (const std::string holder = lock_holder(path); !holder.empty())
        return make_error(in_progress_sentence(path, holder));
      return make_error("recording " + quote_path(path) +
                        " appeared while it was being created (another process?); choose another name.");
    }
    return make_error("cannot create recording " + quote_path(path) + " (" + std::strerror(err) +
                      "); check that the directory is writable.");
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    return make_error("cannot lock the new recording " + quote_path(path) + " (" + std::strerror(err) + ").");
  }
  return RecordingLock(fd);
}

RecordingLock::RecordingLock(RecordingLock&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}

RecordingLock& RecordingLock::operator=(RecordingLock&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

RecordingLock::~RecordingLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace es::recorder
