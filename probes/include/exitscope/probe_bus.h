// In-process probe bus: the hv core calls probe points; attached plugins get callbacks.
//
// Cost model: a probe point is `if (bus.enabled(kind)) { build record; bus.emit(rec); }`.
// With nothing attached `enabled()` is two loads and a predictable branch; record ids are
// still assigned (a counter) so causal links stay exact whether or not anyone listens.
//
// USDT: every record delivered is also the USDT probe `exitscope:record` (sys/sdt.h), so an
// external eBPF program or bpftrace can attach to a running exitscope:
//   arg0 = const struct es_record * (128 bytes, record.h), arg1 = kind, arg2 = id
// It is a nop when nothing is attached. Its semaphore (exitscope_record_semaphore, counted up
// by the kernel while a uprobe is attached, probes/bus/usdt_semaphore.c) also turns every probe
// point on, so the hv builds records for the external tracer even with no in-process
// subscriber. Example: probes/usdt/ (es-usdt-tail).
//
// Part of the ABI at the bottom of the layers (DESIGN.md "Layers"; issue #19): the hv core
// produces through it and every subscriber (recorder, plugin host, live checker) listens on it,
// and it needs only record.h and sys/sdt.h. Unlike record.h and plugin.h it is C++ and for this
// process only: a plugin never sees it (plugin.h hands plugins the records); what leaves the
// process is the USDT probe above, whose three arguments are as stable as record.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "exitscope/record.h"

#ifndef _SDT_HAS_SEMAPHORES
#define _SDT_HAS_SEMAPHORES 1  // NOLINT(bugprone-reserved-identifier): sys/sdt.h's name for this switch
#endif
#include <sys/sdt.h>

extern "C" {
// The USDT probe's semaphore: non-zero while an external tracer is attached.
extern volatile unsigned short exitscope_record_semaphore;
}

namespace es::probes {

using RecordCallback = void (*)(void* user, const es_record* rec);  // rec valid only during the call

class ProbeBus {
 public:
  bool enabled(uint16_t kind) const noexcept { return ((mask_ >> kind) & 1u) | usdt_attached(); }
  bool any_enabled() const noexcept { return mask_ != 0 || usdt_attached(); }
  static bool usdt_attached() noexcept { return __builtin_expect(exitscope_record_semaphore != 0, 0); }
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
    if (usdt_attached()) STAP_PROBE3(exitscope, record, &r, r.kind, r.id);
  }
  void recompute() {
    mask_ = 0;
    for (const Sub& s : subs_) mask_ |= s.mask;
  }
  uint32_t mask_ = 0;
  uint64_t last_id_ = 0;
  int next_handle_ = 1;
  std::vector<Sub> subs_;
  bool emitting_ = false;            // inside emit(): nested emits are deferred
  std::vector<es_record> deferred_;  // records emitted by callbacks, not yet delivered
};

inline constexpr uint32_t kAllKinds = (1u << ES_KIND_COUNT) - 1;

}  // namespace es::probes
