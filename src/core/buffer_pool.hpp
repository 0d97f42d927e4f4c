// The memory arena tensors draw from: freed buffers of 16 KiB and more are
// kept and handed to the next tensor they fit (at least its size, at most
// twice), the most recently released first. A model run again with the same
// shapes allocates nothing new and touches no fresh pages, and a run's tensors
// keep landing on a small set of buffers that are still in cache: MobileNetV2
// then writes its 4.8 MB expansions over memory the run just used instead of
// over a buffer of that exact size last touched a whole run ago (about 5-10%
// faster, a few MB less resident). The pool is bounded (default 1 GiB, or
// DESKML_POOL_MB); past the bound the least recently freed buffers go back to
// the system. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace deskml {

// 64-byte aligned memory for `bytes`; from 2 MiB up it is 2 MiB aligned and its
// whole 2 MiB pages are advised onto transparent huge pages (fewer TLB misses for
// big tensors and packed weights; a partial last page stays in small pages, so
// no memory is held beyond the buffer). Free with std::free. nullptr when the
// system has none.
void* allocate_aligned(size_t bytes);
// The same, owned.
std::shared_ptr<void> allocate_large(size_t bytes);

class BufferPool {
 public:
  static BufferPool& instance();

  // 64-byte aligned storage of at least `bytes`; nullptr when the system has none.
  void* acquire(size_t bytes);
  // Returns storage from acquire(bytes) (same `bytes`; the pool knows the
  // buffer's real capacity).
  void release(void* p, size_t bytes);
  // acquire() whose result goes back to the pool with its last owner; nullptr
  // when the system has no memory.
  std::shared_ptr<void> acquire_shared(size_t bytes);

  // Buffers smaller than this bypass the pool (malloc is fast and cache-warm for them).
  static constexpr size_t kMinPooledBytes = 16 * 1024;
  // False in AddressSanitizer builds, where recycled buffers would hide use-after-free.
  static bool pooling_enabled();

  size_t cached_bytes() const;
  void set_limit(size_t bytes);
  // Frees every cached buffer (tests; a caller that wants memory back now).
  void trim();

 private:
  BufferPool();
  struct Impl;
  Impl* impl_;
};

}  // namespace deskml
