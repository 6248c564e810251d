// A bounded hand-over from one producer thread to one consumer thread, used by the exporters'
// read-ahead (export.cpp: batches of events; text_export.cpp: chains walked on a second
// connection). The producer blocks while `Depth` items wait; stop() releases it for good (push
// then returns false), finish() ends the stream with the producer's result.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <utility>

#include "schema/result.h"

namespace es::exporter {

template <class T, size_t Depth>
class Handoff {
 public:
  // Producer: false once the consumer has stopped (`item` is then left as it was).
  bool push(T&& item) {
    std::unique_lock lock(m_);
    space_.wait(lock, [&] { return q_.size() < Depth || stopped_; });
    if (stopped_) return false;
    q_.push_back(std::move(item));
    ready_.notify_one();
    return true;
  }
  void finish(Result<void> r) {
    std::lock_guard lock(m_);
    result_ = std::move(r);
    finished_ = true;
    ready_.notify_one();
  }
  // Consumer: the next item, or false at the end of the stream.
  bool pop(T& item) {
    std::unique_lock lock(m_);
    ready_.wait(lock, [&] { return !q_.empty() || finished_; });
    if (q_.empty()) return false;
    item = std::move(q_.front());
    q_.pop_front();
    space_.notify_one();
    return true;
  }
  void stop() {
    std::lock_guard lock(m_);
    stopped_ = true;
    space_.notify_one();
  }
  Result<void> result() {
    std::lock_guard lock(m_);
    return result_;
  }

 private:
  std::mutex m_;
  std::condition_variable ready_, space_;
  std::deque<T> q_;
  bool finished_ = false, stopped_ = false;
  Result<void> result_;
};

}  // namespace es::exporter
