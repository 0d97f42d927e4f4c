#include <gtest/gtest.h>

#include <cmath>

#include "core/float16.hpp"
#include "core/shape.hpp"
#include "core/tensor.hpp"

namespace deskml {
namespace {

TEST(Shape, NumelAndStrides) {
  EXPECT_EQ(shape_numel({2, 3, 4}), 24);
  EXPECT_EQ(shape_numel({}), 1);
  EXPECT_EQ(shape_numel({5, 0, 3}), 0);
  EXPECT_EQ(shape_strides({2, 3, 4}), (std::vector<int64_t>{12, 4, 1}));
}

TEST(Shape, HugeDimsAreRejectedNotOverflowed) {
  EXPECT_THROW(shape_numel({int64_t{1} << 30, int64_t{1} << 30, 4}), Error);
  EXPECT_THROW(shape_numel({-1, 3}), Error);
}

TEST(Shape, Broadcast) {
  auto r = broadcast_shapes({2, 1, 4}, {3, 1});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, (Shape{2, 3, 4}));
  EXPECT_FALSE(broadcast_shapes({2, 3}, {4}).ok());
}

TEST(Float16, RoundTripsAndRounds) {
  for (float f : {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f}) {
    EXPECT_EQ(static_cast<float>(Float16(f)), f) << f;
  }
  EXPECT_TRUE(std::isinf(static_cast<float>(Float16(1e6f))));
  EXPECT_TRUE(std::isnan(static_cast<float>(Float16(NAN))));
  EXPECT_EQ(Float16(1.0f + 1.0f / 4096).bits, Float16(1.0f).bits);  // ties to even
}

TEST(Tensor, RowsAreViewsOfTheSameStorage) {
  Tensor t = Tensor::from_vector<int32_t>({0, 1, 2, 3, 4, 5, 6, 7, 8}, {3, 3});
  Tensor mid = t.rows(1, 2);
  EXPECT_EQ(mid.shape(), (Shape{2, 3}));
  EXPECT_EQ(mid.numel(), 6);
  EXPECT_EQ(mid.data<int32_t>()[0], 3);
  EXPECT_EQ(mid.raw_data(), t.data<int32_t>() + 3);
  EXPECT_EQ(t.rows(3, 0).numel(), 0);
  EXPECT_THROW(t.rows(2, 2), Error);
  EXPECT_THROW(t.rows(-1, 1), Error);
  EXPECT_THROW(Tensor::scalar<float>(1).rows(0, 1), Error);
}

TEST(Tensor, CastSaturatesAndTruncates) {
  auto t = Tensor::from_vector<float>({1.7f, -1.7f, 1e20f, NAN}, {4});
  auto i = t.cast(DataType::kInt32);
  EXPECT_EQ(i.data<int32_t>()[0], 1);
  EXPECT_EQ(i.data<int32_t>()[1], -1);
  EXPECT_EQ(i.data<int32_t>()[2], std::numeric_limits<int32_t>::max());
  EXPECT_EQ(i.data<int32_t>()[3], 0);
}

TEST(Tensor, ReshapeSharesStorage) {
  auto t = Tensor::from_vector<int64_t>({1, 2, 3, 4, 5, 6}, {2, 3});
  auto r = t.reshaped({3, 2});
  EXPECT_EQ(r.raw_data(), t.raw_data());
  EXPECT_THROW(t.reshaped({4, 2}), Error);
}

TEST(Tensor, WrongTypeAccessThrows) {
  auto t = Tensor::from_vector<float>({1.0f}, {1});
  EXPECT_THROW(t.data<int32_t>(), Error);
}

}  // namespace
}  // namespace deskml
