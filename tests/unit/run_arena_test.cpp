// Run arenas: recording a run's allocations, planning them into one block,
// replaying the plan, and falling back to the pool whenever a run differs.
#include "runtime/run_arena.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <optional>
#include <thread>
#include <vector>

#include "core/allocation_scope.hpp"
#include "core/buffer_pool.hpp"
#include "core/tensor.hpp"
#include "optimizer_test_util.hpp"

namespace deskml {
namespace {

using runtime::ArenaPlan;
using runtime::ArenaRecorder;
using runtime::ArenaReplay;

constexpr int64_t kFloats = 64 * 1024;  // 256 KiB tensors

Tensor make() { return Tensor(DataType::kFloat32, {kFloats}); }

// A run: a -> b (a dies) -> c (b dies) -> out (c dies); `out` outlives the run.
// a and c may share bytes; b overlaps both in time.
struct ChainRun {
  const void* a = nullptr;
  const void* b = nullptr;
  const void* c = nullptr;
  Tensor out;
};

ChainRun chain(AllocationScope* scope, bool keep_a_alive = false) {
  AllocationScope::Guard guard(scope);
  ChainRun r;
  std::optional<Tensor> a = make();
  r.a = a->raw_data();
  std::optional<Tensor> b = make();
  r.b = b->raw_data();
  std::optional<Tensor> kept;
  if (keep_a_alive) kept = *a;  // a kernel that holds on to its input longer than recorded
  a.reset();
  std::optional<Tensor> c = make();
  r.c = c->raw_data();
  b.reset();
  r.out = make();
  c.reset();
  return r;
}

std::shared_ptr<const ArenaPlan> record() {
  auto recorder = std::make_shared<ArenaRecorder>();
  ChainRun r = chain(recorder.get());
  auto plan = recorder->finish();
  return plan;
}

TEST(RunArena, PlanPutsTensorsThatNeverMeetOnTheSameBytes) {
  auto plan = record();
  ASSERT_NE(plan, nullptr);
  ASSERT_EQ(plan->sizes.size(), 4u);
  const size_t bytes = kFloats * sizeof(float);
  for (size_t s : plan->sizes) EXPECT_EQ(s, bytes);
  EXPECT_EQ(plan->offsets[0], plan->offsets[2]);  // a and c
  EXPECT_NE(plan->offsets[0], plan->offsets[1]);  // a and b meet
  EXPECT_EQ(plan->offsets[3], ArenaPlan::kPool);  // the output outlives the run
  EXPECT_EQ(plan->bytes, 2 * bytes);
  EXPECT_EQ(plan->predecessors[2], std::vector<uint32_t>{0});
}

TEST(RunArena, ReplayServesThePlanAndOutputsFromThePool) {
  auto plan = record();
  ASSERT_NE(plan, nullptr);
  auto replay = ArenaReplay::start(plan);
  ASSERT_NE(replay, nullptr);
  ChainRun r = chain(replay.get());
  EXPECT_FALSE(replay->diverged());
  EXPECT_EQ(replay->served(), 3u);
  EXPECT_EQ(r.a, r.c);
  EXPECT_NE(r.a, r.b);
  // The output is no slice of the block: writing it cannot touch the next run's tensors.
  const char* lo = static_cast<const char*>(r.a) < static_cast<const char*>(r.b) ? static_cast<const char*>(r.a)
                                                                                 : static_cast<const char*>(r.b);
  const auto* out = static_cast<const char*>(r.out.raw_data());
  EXPECT_TRUE(out + r.out.nbytes() <= lo || out >= lo + plan->bytes);
}

TEST(RunArena, ATensorLivingLongerThanRecordedIsNeverOverwritten) {
  auto plan = record();
  ASSERT_NE(plan, nullptr);
  auto replay = ArenaReplay::start(plan);
  ChainRun r = chain(replay.get(), /*keep_a_alive=*/true);
  EXPECT_TRUE(replay->diverged());
  EXPECT_NE(r.c, r.a);  // c would have reused a's bytes; a was still alive
}

TEST(RunArena, ADifferentAllocationSequenceFallsBackToThePool) {
  auto plan = record();
  auto replay = ArenaReplay::start(plan);
  AllocationScope::Guard guard(replay.get());
  Tensor a = make();
  Tensor other(DataType::kFloat32, {kFloats / 2});  // not the recorded size
  EXPECT_TRUE(replay->diverged());
  Tensor c = make();  // the rest of the run comes from the pool
  EXPECT_NE(c.raw_data(), a.raw_data());
  EXPECT_EQ(replay->served(), 1u);
}

TEST(RunArena, SlicesKeepTheBlockAliveAfterTheReplayIsGone) {
  auto plan = record();
  Tensor survivor;
  {
    auto replay = ArenaReplay::start(plan);
    AllocationScope::Guard guard(replay.get());
    survivor = make();
  }
  std::memset(survivor.raw_data(), 0x5a, survivor.nbytes());  // still valid memory (ASan would say otherwise)
  EXPECT_EQ(static_cast<const unsigned char*>(survivor.raw_data())[123], 0x5a);
}

// Through a session: planned runs give exactly the unplanned results, outputs
// of earlier runs stay intact, and concurrent runs do not share a block.
TEST(RunArena, SessionRunsAgreeWithTheFirstAndKeepEarlierOutputs) {
  using namespace optimizer_test;
  Builder b;
  b.input("x", {graph::Dim::named("N"), graph::Dim::of(16), graph::Dim::of(24), graph::Dim::of(24)});
  const std::string c1 = b.op("Relu", {b.conv("x", 16, 32, 3, pads1())});
  const std::string c2 = b.op("Relu", {b.conv(c1, 32, 32, 3, pads1())});
  const std::string s = b.op("Add", {c1, c2});
  b.node("Relu", {b.conv(s, 32, 16, 1)}, {"y"});
  b.output("y");
  auto session = make_session(b.model(), 2);
  ASSERT_TRUE(session.ok()) << session.status().to_string();
  for (int64_t batch : {1, 2}) {
    const Feeds feeds = {{"x", b.random({batch, 16, 24, 24}, -1, 1)}};
    std::vector<Tensor> kept;
    for (int i = 0; i < 6; ++i) {
      auto out = run_session(**session, feeds);
      ASSERT_EQ(out.size(), 1u);
      kept.push_back(out[0].second);
    }
    for (size_t i = 1; i < kept.size(); ++i) {
      ASSERT_EQ(kept[i].nbytes(), kept[0].nbytes());
      EXPECT_EQ(std::memcmp(kept[i].raw_data(), kept[0].raw_data(), kept[0].nbytes()), 0) << "run " << i;
    }
  }
  const Feeds feeds = {{"x", b.random({1, 16, 24, 24}, -1, 1)}};
  const auto want = run_session(**session, feeds);
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        auto got = (*session)->run(feeds);
        if (!got.ok() ||
            std::memcmp(got->at(0).second.raw_data(), want[0].second.raw_data(), want[0].second.nbytes()) != 0) {
          ++mismatches;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace
}  // namespace deskml
