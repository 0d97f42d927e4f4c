#include "core/buffer_pool.hpp"

#include <gtest/gtest.h>

#include <cstdint>

#include "core/tensor.hpp"

namespace deskml {
namespace {

const bool kPooling = BufferPool::pooling_enabled();

TEST(BufferPool, ReusesAFreedBufferOfTheSameSize) {
  if (!kPooling) GTEST_SKIP() << "pooling is off under AddressSanitizer";
  auto& pool = BufferPool::instance();
  pool.trim();
  const size_t bytes = 1 << 20;
  void* a = pool.acquire(bytes);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 64, 0u);
  pool.release(a, bytes);
  EXPECT_EQ(pool.cached_bytes(), bytes);
  void* b = pool.acquire(bytes);
  EXPECT_EQ(a, b);
  EXPECT_EQ(pool.cached_bytes(), 0u);
  void* c = pool.acquire(bytes + 64);  // another size: a fresh buffer
  EXPECT_NE(c, b);
  pool.release(b, bytes);
  pool.release(c, bytes + 64);
  pool.trim();
  EXPECT_EQ(pool.cached_bytes(), 0u);
}

TEST(BufferPool, AFreeBufferUpToTwiceTheSizeServesARequest) {
  if (!kPooling) GTEST_SKIP() << "pooling is off under AddressSanitizer";
  auto& pool = BufferPool::instance();
  pool.trim();
  const size_t big = 1 << 20;
  void* a = pool.acquire(big);
  pool.release(a, big);
  void* b = pool.acquire(700 << 10);
  EXPECT_EQ(b, a);
  pool.release(b, 700 << 10);
  EXPECT_EQ(pool.cached_bytes(), big);  // back at its real capacity
  void* c = pool.acquire(big);          // and it serves its full size again
  EXPECT_EQ(c, a);
  pool.release(c, big);
  void* d = pool.acquire(400 << 10);  // less than half: a buffer of its own
  EXPECT_NE(d, a);
  pool.release(d, 400 << 10);
  void* e = pool.acquire(big + 64);  // larger: never a smaller buffer
  EXPECT_NE(e, a);
  pool.release(e, big + 64);
  pool.trim();
  EXPECT_EQ(pool.cached_bytes(), 0u);
}

TEST(BufferPool, TheMostRecentlyReleasedFittingBufferComesFirst) {
  if (!kPooling) GTEST_SKIP() << "pooling is off under AddressSanitizer";
  auto& pool = BufferPool::instance();
  pool.trim();
  void* a = pool.acquire(1 << 20);
  void* b = pool.acquire(1200 << 10);
  void* c = pool.acquire(64 << 10);
  pool.release(a, 1 << 20);
  pool.release(b, 1200 << 10);
  pool.release(c, 64 << 10);  // most recent, but too small
  EXPECT_EQ(pool.acquire(1 << 20), b);
  EXPECT_EQ(pool.acquire(1 << 20), a);
  pool.release(a, 1 << 20);
  pool.release(b, 1 << 20);
  pool.trim();
  EXPECT_EQ(pool.cached_bytes(), 0u);
}

TEST(BufferPool, SmallBuffersAndTheLimitKeepItBounded) {
  if (!kPooling) GTEST_SKIP() << "pooling is off under AddressSanitizer";
  auto& pool = BufferPool::instance();
  pool.trim();
  void* small = pool.acquire(BufferPool::kMinPooledBytes / 2);
  pool.release(small, BufferPool::kMinPooledBytes / 2);
  EXPECT_EQ(pool.cached_bytes(), 0u);  // small ones go straight back
  pool.set_limit(3 << 20);
  void* bufs[4];
  for (auto& p : bufs) p = pool.acquire(1 << 20);
  for (auto& p : bufs) pool.release(p, 1 << 20);
  EXPECT_EQ(pool.cached_bytes(), size_t{3} << 20);  // the oldest one was freed
  pool.set_limit(size_t{1} << 30);
  pool.trim();
}

TEST(BufferPool, TensorsRunTheSameShapesWithoutNewBuffers) {
  if (!kPooling) GTEST_SKIP() << "pooling is off under AddressSanitizer";
  BufferPool::instance().trim();
  const void* first = nullptr;
  {
    Tensor t(DataType::kFloat32, {256, 256});
    first = t.raw_data();
  }
  Tensor again(DataType::kFloat32, {256, 256});
  EXPECT_EQ(again.raw_data(), first);
}

}  // namespace
}  // namespace deskml
