#include "core/buffer_pool.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <list>
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
  mutable std::mutex mutex;
  size_t limit = size_t{1} << 30;
  size_t cached = 0;
  // Free buffers by size; `order` remembers release order for eviction.
  std::unordered_map<size_t, std::vector<void*>> free_by_size;
  std::list<std::pair<size_t, void*>> order;

  void evict_to(size_t target) {
    while (cached > target && !order.empty()) {
      auto [bytes, p] = order.front();
      order.pop_front();
      auto& v = free_by_size[bytes];
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (*it == p) {
          v.erase(it);
          break;
        }
      }
      cached -= bytes;
      std::free(p);
    }
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
  if (kPooling && bytes >= kMinPooledBytes) {
    std::lock_guard lock(impl_->mutex);
    auto it = impl_->free_by_size.find(bytes);
    if (it != impl_->free_by_size.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      impl_->cached -= bytes;
      for (auto o = impl_->order.rbegin(); o != impl_->order.rend(); ++o) {
        if (o->second == p) {
          impl_->order.erase(std::next(o).base());
          break;
        }
      }
      return p;
    }
  }
  return allocate_aligned(bytes);
}

void BufferPool::release(void* p, size_t bytes) {
  if (p == nullptr) return;
  if (!kPooling || bytes < kMinPooledBytes) {
    std::free(p);
    return;
  }
  std::lock_guard lock(impl_->mutex);
  if (bytes > impl_->limit) {
    std::free(p);
    return;
  }
  impl_->free_by_size[bytes].push_back(p);
  impl_->order.emplace_back(bytes, p);
  impl_->cached += bytes;
  impl_->evict_to(impl_->limit);
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
