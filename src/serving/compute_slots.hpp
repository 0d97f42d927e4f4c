// The engine's thread budget, shared by every model instance: a run that uses T
// threads holds T slots, so instances of all models together never ask for more
// threads than there are cores.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <mutex>

namespace deskml::serving {

class ComputeSlots {
 public:
  explicit ComputeSlots(int total) : total_(std::max(1, total)), free_(total_) {}
  int total() const { return total_; }

  // Blocks until `n` slots (clamped to the total) are free and takes them.
  int acquire(int n) {
    n = std::clamp(n, 1, total_);
    std::unique_lock lock(mutex_);
    freed_.wait(lock, [&] { return free_ >= n; });
    free_ -= n;
    return n;
  }
  void release(int n) {
    {
      std::lock_guard lock(mutex_);
      free_ += n;
    }
    freed_.notify_all();
  }

 private:
  const int total_;
  int free_;
  std::mutex mutex_;
  std::condition_variable freed_;
};

// Holds slots for a scope.
class SlotLease {
 public:
  SlotLease(ComputeSlots& slots, int n) : slots_(slots), n_(slots.acquire(n)) {}
  ~SlotLease() { slots_.release(n_); }
  SlotLease(const SlotLease&) = delete;
  SlotLease& operator=(const SlotLease&) = delete;

 private:
  ComputeSlots& slots_;
  int n_;
};

}  // namespace deskml::serving
