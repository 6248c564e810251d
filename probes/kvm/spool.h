// Between the BPF ring buffers and the pipeline thread of a live KVM recording
// (probes/kvm/kvm_record.h): the spool of raw events waiting to be decoded and written, and the
// Yielder that runs the pipeline and the writer at idle priority while they keep up.
#pragma once

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "probes/kvm/kvm_event.h"

namespace es::kvm {

// Raw ring-buffer events waiting for the pipeline thread, in chunks. The ring's consumer never
// blocks here: beyond `max_events` a chunk is dropped and counted (stored with the ring's drops).
class Spool {
 public:
  static constexpr size_t kChunk = 4096;
  explicit Spool(uint64_t max_events) : max_(std::max<uint64_t>(max_events, kChunk)) { cur_.reserve(kChunk); }

  // Consumer side (one thread).
  void push(const es_kvm_event& e) {
    cur_.push_back(e);
    if (cur_.size() == kChunk) publish();
  }
  void publish() {
    if (cur_.empty()) return;
    std::lock_guard lk(mu_);
    pushed_ += cur_.size();
    if (backlog_ + cur_.size() > max_) {
      dropped_ += cur_.size();
      cur_.clear();
      return;
    }
    backlog_ += cur_.size();
    chunks_.push_back(std::move(cur_));
    if (!free_.empty()) {
      cur_ = std::move(free_.back());
      free_.pop_back();
    } else {
      cur_ = {};
      cur_.reserve(kChunk);
    }
    cv_.notify_one();
  }
  void close() {
    std::lock_guard lk(mu_);
    closed_ = true;
    cv_.notify_one();
  }
  // Drops every waiting chunk (counted); returns how many events that was.
  uint64_t abandon() {
    std::lock_guard lk(mu_);
    uint64_t n = 0;
    for (const auto& c : chunks_) n += c.size();
    chunks_.clear();
    backlog_ -= n;
    abandoned_ += n;
    return n;
  }

  // Pipeline side (one thread): the next chunk into `out` (whose old buffer is recycled);
  // false once closed and empty. done(n) after processing it.
  bool pop(std::vector<es_kvm_event>& out) {
    std::unique_lock lk(mu_);
    if (out.capacity() && free_.size() < 64) {
      out.clear();
      free_.push_back(std::move(out));
    }
    cv_.wait(lk, [&] { return !chunks_.empty() || closed_; });
    if (chunks_.empty()) return false;
    out = std::move(chunks_.front());
    chunks_.pop_front();
    return true;
  }
  void done(size_t n) {
    std::lock_guard lk(mu_);
    backlog_ -= n;
  }

  uint64_t backlog() const {  // events handed over and not yet processed
    std::lock_guard lk(mu_);
    return backlog_;
  }
  uint64_t oldest_ns() const {  // time of the oldest waiting event, 0 if none
    std::lock_guard lk(mu_);
    return chunks_.empty() ? 0 : chunks_.front().front().time_ns;
  }
  uint64_t pushed() const {
    std::lock_guard lk(mu_);
    return pushed_;
  }
  uint64_t dropped() const {  // full
    std::lock_guard lk(mu_);
    return dropped_;
  }
  uint64_t abandoned() const {
    std::lock_guard lk(mu_);
    return abandoned_;
  }
  uint64_t capacity() const { return max_; }

 private:
  const uint64_t max_;
  std::vector<es_kvm_event> cur_;  // the consumer's chunk being filled
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::vector<es_kvm_event>> chunks_;
  std::vector<std::vector<es_kvm_event>> free_;
  uint64_t backlog_ = 0, pushed_ = 0, dropped_ = 0, abandoned_ = 0;
  bool closed_ = false;
};

// Runs the pipeline and writer threads at SCHED_IDLE (sched(7): only on a CPU with nothing else
// to run) while the backlog is younger than `max_lag_s` and under half the spool, and at normal
// priority otherwise, with hysteresis (back to idle under half the lag and a quarter of the
// spool). Decoding and SQLite cost ~3 µs per event; on a host whose CPUs the guests use, this
// does that work later instead of beside them (BENCHMARKS.md, "KVM recorder").
// Returning from SCHED_IDLE needs RLIMIT_NICE >= 20 once root is dropped (allow_return_from_idle).
class Yielder {
 public:
  Yielder(double max_lag_s, uint64_t spool_capacity, std::vector<pthread_t> threads)
      : max_lag_ns_(max_lag_s > 0 ? static_cast<uint64_t>(max_lag_s * 1e9) : 0),
        capacity_(spool_capacity),
        threads_(std::move(threads)) {
    if (max_lag_ns_ && !set(true)) {
      note_ = "priority control unavailable; decoding runs beside the guests";
      max_lag_ns_ = 0;
    }
  }
  void update(uint64_t backlog, uint64_t oldest_ns, uint64_t now) {
    if (!max_lag_ns_) return;
    const uint64_t lag = oldest_ns && now > oldest_ns ? now - oldest_ns : 0;
    if (idle_ && (lag > max_lag_ns_ || backlog > capacity_ / 2)) {
      if (!set(false)) {  // cannot return from idle: stay there rather than lose track
        note_ = "could not raise the pipeline's priority again";
        return;
      }
      ++raised_;
    } else if (!idle_ && lag < max_lag_ns_ / 2 && backlog < capacity_ / 4) {
      (void)set(true);
    }
  }
  void finish() {
    if (idle_) (void)set(false);
  }
  std::string summary() const {
    if (!note_.empty()) return note_;
    if (!max_lag_ns_) return "decoding beside the guests (--max-lag 0)";
    return "decoding at idle priority, up to " + std::to_string(max_lag_ns_ / 1000000) + " ms behind; raised " +
           std::to_string(raised_) + " time(s)";
  }

 private:
  bool set(bool idle) {
    sched_param sp{};
    for (pthread_t t : threads_)
      if (::pthread_setschedparam(t, idle ? SCHED_IDLE : SCHED_OTHER, &sp) != 0) return false;
    idle_ = idle;
    return true;
  }
  uint64_t max_lag_ns_;
  uint64_t capacity_;
  std::vector<pthread_t> threads_;
  bool idle_ = false;
  uint64_t raised_ = 0;
  std::string note_;
};

}  // namespace es::kvm
