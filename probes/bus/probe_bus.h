// In-process probe bus: the hv core calls probe points; attached plugins get callbacks.
//
// Cost model: a probe point is `if (bus.enabled(kind)) { build record; bus.emit(rec); }`.
// With nothing attached `enabled()` is one load and a predictable branch; record ids are
// still assigned (a counter) so causal links stay exact whether or not anyone listens.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "exitscope/record.h"

namespace es::probes {

using RecordCallback = void (*)(void* user, const es_record* rec);  // rec valid only during the call

class ProbeBus {
 public:
  bool enabled(uint16_t kind) const noexcept { return (mask_ >> kind) & 1u; }
  bool any_enabled() const noexcept { return mask_ != 0; }
  uint64_t next_id() noexcept { return ++last_id_; }
  uint64_t last_id() const noexcept { return last_id_; }

  // Fills version; assigns an id if r.id == 0; delivers to every subscriber of r.kind.
  //
  // Re-entrancy: a subscriber may emit from inside its callback (the live invariant checker
  // emits ES_KIND_VIOLATION records). Such a nested emit gets its id at once, but is queued
  // and delivered after the record being delivered has reached every subscriber, so every
  // subscriber sees records in id order and no callback is re-entered.
  void emit(es_record& r) noexcept {
    r.version = ES_RECORD_VERSION;
    if (r.id == 0) r.id = next_id();
    if (emitting_) {
      deferred_.push_back(r);
      return;
    }
    emitting_ = true;
    deliver(r);
    // Records emitted by callbacks, in emission order (which may append more).
    for (size_t i = 0; i < deferred_.size(); ++i) {
      const es_record d = deferred_[i];  // copy: deliver() may grow deferred_
      deliver(d);
    }
    deferred_.clear();
    emitting_ = false;
  }

  // kind_mask: bit k set = receive ES_KIND k. Returns a handle for unsubscribe().
  int subscribe(uint32_t kind_mask, RecordCallback cb, void* user) {
    subs_.push_back({kind_mask, cb, user, next_handle_});
    recompute();
    return next_handle_++;
  }
  void unsubscribe(int handle) {
    std::erase_if(subs_, [&](const Sub& s) { return s.handle == handle; });
    recompute();
  }

 private:
  struct Sub {
    uint32_t mask;
    RecordCallback cb;
    void* user;
    int handle;
  };
  void deliver(const es_record& r) const noexcept {
    for (const Sub& s : subs_)
      if ((s.mask >> r.kind) & 1u) s.cb(s.user, &r);
  }
  void recompute() {
    mask_ = 0;
    for (const Sub& s : subs_) mask_ |= s.mask;
  }
  uint32_t mask_ = 0;
  uint64_t last_id_ = 0;
  int next_handle_ = 1;
  std::vector<Sub> subs_;
  bool emitting_ = false;             // inside emit(): nested emits are deferred
  std::vector<es_record> deferred_;  // records emitted by callbacks, not yet delivered
};

inline constexpr uint32_t kAllKinds = (1u << ES_KIND_COUNT) - 1;

}  // namespace es::probes
