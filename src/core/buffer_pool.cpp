#include "core/buffer_pool.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <list>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

namespace deskml {
namespace {

// Under AddressSanitizer recycled buffers would hide use-after-free: no pooling there.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kPooling = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kPooling = false;
#else
constexpr bool kPooling = true;
#endif
#else
constexpr bool kPooling = true;
#endif

constexpr size_t kHugePage = size_t{2} << 20;

}  // namespace

void* allocate_aligned(size_t bytes) {
  if (bytes >= kHugePage) {
    // 2 MiB-aligned, and only the whole 2 MiB pages inside the buffer are advised
    // huge: rounding the size up to a huge page made a 2.4 MB weight hold 4 MB
    // (the encoder reference model: 216 MB peak RSS against 158 MB without).
    void* p = nullptr;
    if (posix_memalign(&p, kHugePage, (bytes + 4095) / 4096 * 4096) != 0) return nullptr;
    (void)madvise(p, bytes / kHugePage * kHugePage, MADV_HUGEPAGE);  // advice only; fine if refused
    return p;
  }
  return std::aligned_alloc(64, (std::max<size_t>(bytes, 1) + 63) / 64 * 64);
}

std::shared_ptr<void> allocate_large(size_t bytes) {
  void* p = allocate_aligned(bytes);
  if (p == nullptr) throw std::bad_alloc();
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}

struct BufferPool::Impl {
  using Entry = std::pair<size_t, void*>;  // (capacity, pointer)
  mutable std::mutex mutex;
  size_t limit = size_t{1} << 30;
  size_t cached = 0;
  // Free buffers, least recently released first, and the same by capacity.
  std::list<Entry> free;
  std::multimap<size_t, std::list<Entry>::iterator> by_capacity;
  // The capacity of every pooled buffer handed out: a request may get a larger one.
  std::unordered_map<void*, size_t> handed;

  // A buffer fits a request when it is large enough and no more than twice the size.
  static bool fits(size_t capacity, size_t bytes) { return capacity >= bytes && capacity / 2 <= bytes; }

  // Removes a free buffer from both indexes; returns it.
  void* unlink(std::list<Entry>::iterator it) {
    const auto [capacity, p] = *it;
    auto range = by_capacity.equal_range(capacity);
    for (auto b = range.first; b != range.second; ++b) {
      if (b->second == it) {
        by_capacity.erase(b);
        break;
      }
    }
    free.erase(it);
    cached -= capacity;
    return p;
  }

  // Hands a free buffer out, remembering its capacity.
  void* take(std::list<Entry>::iterator it) {
    const size_t capacity = it->first;
    void* p = unlink(it);
    handed.emplace(p, capacity);
    return p;
  }

  // The most recently released fitting buffer among the last few; else the
  // smallest fitting one; else nullptr.
  void* find(size_t bytes) {
    constexpr int kRecent = 32;
    int looked = 0;
    for (auto it = free.end(); it != free.begin() && looked < kRecent; ++looked) {
      --it;
      if (fits(it->first, bytes)) return take(it);
    }
    auto b = by_capacity.lower_bound(bytes);
    if (b != by_capacity.end() && fits(b->first, bytes)) return take(b->second);
    return nullptr;
  }

  void put(size_t capacity, void* p) {
    free.emplace_back(capacity, p);
    by_capacity.emplace(capacity, std::prev(free.end()));
    cached += capacity;
  }

  void evict_to(size_t target) {
    while (cached > target && !free.empty()) std::free(unlink(free.begin()));
  }
};

BufferPool& BufferPool::instance() {
  static BufferPool* pool = new BufferPool();  // never destroyed: tensors may outlive static destruction
  return *pool;
}

BufferPool::BufferPool() : impl_(new Impl()) {
  if (const char* mb = std::getenv("DESKML_POOL_MB")) {
    char* end = nullptr;
    const unsigned long long v = std::strtoull(mb, &end, 10);
    if (end != mb && *end == '\0') impl_->limit = static_cast<size_t>(v) << 20;
  }
}

bool BufferPool::pooling_enabled() { return kPooling; }

void* BufferPool::acquire(size_t bytes) {
  if (!kPooling || bytes < kMinPooledBytes) return allocate_aligned(bytes);
  {
    // Any free buffer that fits, the most recently released first: recently
    // written memory is likely still in cache, so a run's tensors keep landing
    // on a small, warm set of buffers instead of one buffer per tensor size.
    std::lock_guard lock(impl_->mutex);
    if (void* p = impl_->find(bytes)) return p;
  }
  void* p = allocate_aligned(bytes);
  if (p != nullptr) {
    std::lock_guard lock(impl_->mutex);
    impl_->handed.emplace(p, bytes);
  }
  return p;
}

void BufferPool::release(void* p, size_t bytes) {
  if (p == nullptr) return;
  if (!kPooling || bytes < kMinPooledBytes) {
    std::free(p);
    return;
  }
  std::lock_guard lock(impl_->mutex);
  if (auto it = impl_->handed.find(p); it != impl_->handed.end()) {
    bytes = it->second;
    impl_->handed.erase(it);
  }
  if (bytes > impl_->limit) {
    std::free(p);
    return;
  }
  impl_->put(bytes, p);
  impl_->evict_to(impl_->limit);
}

std::shared_ptr<void> BufferPool::acquire_shared(size_t bytes) {
  void* p = acquire(bytes);
  if (p == nullptr) return nullptr;
  return std::shared_ptr<void>(p, [bytes](void* q) { BufferPool::instance().release(q, bytes); });
}

size_t BufferPool::cached_bytes() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->cached;
}

void BufferPool::set_limit(size_t bytes) {
  std::lock_guard lock(impl_->mutex);
  impl_->limit = bytes;
  impl_->evict_to(bytes);
}

void BufferPool::trim() {
  std::lock_guard lock(impl_->mutex);
  impl_->evict_to(0);
}

}  // namespace deskml
