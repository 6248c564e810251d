// Host-physical memory of the model: one flat arena. Guest-physical memory is a range of
// it reached through EPT; the vmm's own structures (EPT tables, VMCS regions) live here too.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

namespace es::hv {

class HostMemory {
 public:
  static constexpr uint64_t kPageSize = 4096;

  // The arena starts zeroed. calloc of this size maps fresh pages, which the kernel zeroes when
  // they are first touched: a 64 MiB arena no longer costs 16 384 page faults and a 64 MiB
  // memset before the guest runs (1 % of a 1 M-event `record`; a zero-filled std::vector wrote
  // every byte). The guest touches only the pages it uses.
  explicit HostMemory(uint64_t bytes) : bytes_(static_cast<uint8_t*>(std::calloc(bytes ? bytes : 1, 1))), size_(bytes) {
    if (!bytes_) throw std::bad_alloc();
  }

  uint64_t size() const { return size_; }
  bool contains(uint64_t hpa, uint64_t len = 1) const { return hpa <= size() && len <= size() - hpa; }

  // nullptr when [hpa, hpa+len) is outside the arena.
  uint8_t* ptr(uint64_t hpa, uint64_t len = 1) { return contains(hpa, len) ? bytes_.get() + hpa : nullptr; }
  const uint8_t* ptr(uint64_t hpa, uint64_t len = 1) const { return contains(hpa, len) ? bytes_.get() + hpa : nullptr; }

  // Checked accessors: false when out of range (callers turn that into an internal error).
  template <typename T>
  bool read(uint64_t hpa, T& out) const {
    const uint8_t* p = ptr(hpa, sizeof(T));
    if (!p) return false;
    std::memcpy(&out, p, sizeof(T));
    return true;
  }
  template <typename T>
  bool write(uint64_t hpa, const T& v) {
    uint8_t* p = ptr(hpa, sizeof(T));
    if (!p) return false;
    std::memcpy(p, &v, sizeof(T));
    return true;
  }
  bool copy_in(uint64_t hpa, const void* src, uint64_t len) {
    uint8_t* p = ptr(hpa, len);
    if (!p) return false;
    std::memcpy(p, src, len);
    return true;
  }

  // Page allocator for hypervisor structures, from the top of the arena downwards (guest RAM
  // is placed from `guest_base` upwards by the vmm). Returns a zeroed page, or 0 when full.
  uint64_t alloc_page() {
    if (top_ == 0) top_ = size() & ~(kPageSize - 1);
    if (top_ < kPageSize || top_ - kPageSize < low_water_) return 0;
    top_ -= kPageSize;
    std::memset(bytes_.get() + top_, 0, kPageSize);
    return top_;
  }
  // Pages below this address are never handed out by alloc_page (guest RAM).
  void reserve_below(uint64_t hpa) { low_water_ = hpa; }

 private:
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t[], Free> bytes_;
  uint64_t size_ = 0;
  uint64_t top_ = 0;
  uint64_t low_water_ = 0;
};

}  // namespace es::hv
