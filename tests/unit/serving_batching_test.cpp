// The batcher's parts on their own: the request queue's order and sweeps,
// stacking and splitting rows, batched metrics, request ids.
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "serving/batching.hpp"
#include "serving/log.hpp"
#include "serving/metrics.hpp"
#include "serving/request_queue.hpp"

namespace deskml::serving {
namespace {

std::shared_ptr<PendingRequest> request(int priority, int64_t rows = 1) {
  auto r = std::make_shared<PendingRequest>();
  r->options.priority = priority;
  r->rows = rows;
  return r;
}

std::vector<const PendingRequest*> order(RequestQueue& q) {
  std::vector<const PendingRequest*> seen;
  q.sweep(
      [&](const PendingRequest& r) {
        seen.push_back(&r);
        return RequestQueue::Pick::kLeave;
      },
      nullptr);
  return seen;
}

TEST(ServingBatching, QueueIsHighestPriorityFirstThenArrivalOrder) {
  RequestQueue q;
  auto a = request(0), b = request(5), c = request(0), d = request(-1), e = request(5);
  for (const auto& r : {a, b, c, d, e}) q.push(r);
  EXPECT_EQ(q.size(), 5u);
  EXPECT_EQ(order(q), (std::vector<const PendingRequest*>{b.get(), e.get(), a.get(), c.get(), d.get()}));
  EXPECT_TRUE(q.remove(a.get()));
  EXPECT_FALSE(q.remove(a.get()));
  EXPECT_TRUE(q.remove(d.get()));  // the last of its priority
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(order(q), (std::vector<const PendingRequest*>{b.get(), e.get(), c.get()}));
}

TEST(ServingBatching, SweepTakesDropsLeavesAndStops) {
  RequestQueue q;
  std::vector<std::shared_ptr<PendingRequest>> rs;
  for (int i = 0; i < 6; ++i) {
    rs.push_back(request(0, i));
    q.push(rs.back());
  }
  // rows 0: drop, 1: leave, 2: take, 3: take, 4: stop (4 and 5 stay).
  std::vector<std::shared_ptr<PendingRequest>> taken;
  q.sweep(
      [](const PendingRequest& r) {
        switch (r.rows) {
          case 0:
            return RequestQueue::Pick::kDrop;
          case 1:
            return RequestQueue::Pick::kLeave;
          case 4:
            return RequestQueue::Pick::kStop;
          default:
            return RequestQueue::Pick::kTake;
        }
      },
      &taken);
  ASSERT_EQ(taken.size(), 2u);
  EXPECT_EQ(taken[0], rs[2]);
  EXPECT_EQ(taken[1], rs[3]);
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(order(q), (std::vector<const PendingRequest*>{rs[1].get(), rs[4].get(), rs[5].get()}));
  // Without a list to take into, kTake leaves the request queued (a dry run).
  q.sweep([](const PendingRequest&) { return RequestQueue::Pick::kTake; }, nullptr);
  EXPECT_EQ(q.size(), 3u);
}

TEST(ServingBatching, StackAndSplitRoundTrip) {
  Tensors a{{"x", Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2})}};
  Tensors b{{"x", Tensor::from_vector<float>({5, 6}, {1, 2})}};
  Tensors c{{"x", Tensor::from_vector<float>({7, 8}, {1, 2})}};
  Tensors other{{"x", Tensor::from_vector<float>({1, 2, 3}, {1, 3})}};
  EXPECT_EQ(batch_signature(a), batch_signature(b));
  EXPECT_TRUE(stackable(a, b));
  EXPECT_NE(batch_signature(a), batch_signature(other));
  EXPECT_FALSE(stackable(a, other));
  Tensors renamed{{"y", Tensor::from_vector<float>({5, 6}, {1, 2})}};
  EXPECT_FALSE(stackable(a, renamed));

  Tensors stacked = stack_requests({&a, &b, &c});
  ASSERT_EQ(stacked.size(), 1u);
  EXPECT_EQ(stacked[0].second.shape(), (Shape{4, 2}));
  auto parts = split_outputs(stacked, {2, 1, 1});
  ASSERT_TRUE(parts.ok());
  ASSERT_EQ(parts->size(), 3u);
  EXPECT_EQ((*parts)[0][0].first, "x");
  EXPECT_EQ((*parts)[0][0].second.shape(), (Shape{2, 2}));
  EXPECT_EQ(
      std::vector<float>((*parts)[1][0].second.values<float>().begin(), (*parts)[1][0].second.values<float>().end()),
      (std::vector<float>{5, 6}));
  EXPECT_EQ((*parts)[2][0].second.values<float>()[1], 8.0f);
  // The parts are views of the batch's storage, which they keep alive.
  EXPECT_EQ((*parts)[1][0].second.raw_data(), static_cast<const float*>(stacked[0].second.raw_data()) + 4);
  stacked.clear();
  EXPECT_EQ((*parts)[0][0].second.values<float>()[3], 4.0f);

  auto bad = split_outputs(Tensors{{"y", Tensor::from_vector<float>({1, 2}, {2})}}, {1, 2});
  EXPECT_FALSE(bad.ok());
}

TEST(ServingBatching, ObserveLatenciesMatchesObservingOneByOne) {
  Metrics one, many;
  const std::vector<double> seconds = {0.00005, 0.0001, 0.0003, 0.002, 0.002, 7.0, 60.0};
  for (double v : seconds) one.model("m").queue_seconds->Observe(v);
  Metrics::observe_latencies(*many.model("m").queue_seconds, seconds);
  const auto a = one.model("m").queue_seconds->Collect().histogram;
  const auto b = many.model("m").queue_seconds->Collect().histogram;
  EXPECT_EQ(a.sample_count, b.sample_count);
  EXPECT_DOUBLE_EQ(a.sample_sum, b.sample_sum);
  ASSERT_EQ(a.bucket.size(), b.bucket.size());
  for (size_t i = 0; i < a.bucket.size(); ++i) EXPECT_EQ(a.bucket[i].cumulative_count, b.bucket[i].cumulative_count);
}

TEST(ServingBatching, RequestIdsAreUniqueAcrossThreads) {
  constexpr int kThreads = 4, kEach = 3000;
  std::vector<std::vector<std::string>> ids(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&ids, t] {
      for (int i = 0; i < kEach; ++i) ids[static_cast<size_t>(t)].push_back(log::new_request_id());
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::string> all;
  for (const auto& v : ids) all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kEach));
  const std::string& id = ids[0][0];
  EXPECT_EQ(id[0], 'r');
  EXPECT_EQ(id[5], '-');
  EXPECT_LE(id.size(), 15u);  // fits std::string's own buffer
}

}  // namespace
}  // namespace deskml::serving
