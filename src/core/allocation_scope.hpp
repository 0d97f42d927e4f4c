// A hook for the tensor allocations one thread makes while a scope is
// installed: the runtime installs a run arena (runtime/run_arena.hpp) around a
// model run, which records the run's allocations or serves them from one
// planned block. Tensor storage asks the current scope first and falls back to
// the BufferPool when it declines.
#pragma once

#include <cstddef>
#include <memory>

namespace deskml {

class AllocationScope {
 public:
  virtual ~AllocationScope() = default;
  // Storage for `bytes` (a multiple of 64), or nullptr to take it from the pool.
  virtual std::shared_ptr<void> allocate(size_t bytes) = 0;

  // This thread's scope, or nullptr.
  static AllocationScope* current();

  // Installs a scope on this thread for its lifetime (scopes nest: the
  // previous one comes back when the guard ends).
  class Guard {
   public:
    explicit Guard(AllocationScope* scope);
    ~Guard();
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

   private:
    AllocationScope* previous_;
  };
};

}  // namespace deskml
