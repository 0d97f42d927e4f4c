#include "runtime/run_arena.hpp"

#include <algorithm>

#include "core/buffer_pool.hpp"

namespace deskml::runtime {
namespace {

constexpr uint64_t kAlive = UINT64_MAX;
// Allocations smaller than this stay out of the plan (shape tensors, scalars).
constexpr size_t kMinPlannedBytes = 4096;
// Beyond this many allocations in one run, planning (quadratic) is not tried.
constexpr size_t kMaxPlannedAllocations = 8192;
// A block larger than this is not planned: the pool (1 GiB by default) would
// not keep it between runs, and every run would fault in a fresh one.
constexpr size_t kMaxBlockBytes = size_t{256} << 20;

}  // namespace

std::shared_ptr<void> ArenaRecorder::allocate(size_t bytes) {
  auto storage = BufferPool::instance().acquire_shared(bytes);
  if (!storage) return nullptr;
  uint32_t index = 0;
  {
    std::lock_guard lock(mutex_);
    index = static_cast<uint32_t>(events_.size());
    events_.push_back({bytes, clock_++, kAlive});
  }
  // The release is recorded, then the storage goes back to the pool.
  void* p = storage.get();
  return std::shared_ptr<void>(p, [self = shared_from_this(), index, storage](void*) mutable {
    self->released(index);
    storage.reset();
  });
}

void ArenaRecorder::released(uint32_t index) {
  std::lock_guard lock(mutex_);
  if (!finished_) events_[index].end = clock_++;
}

std::shared_ptr<const ArenaPlan> ArenaRecorder::finish() {
  std::vector<Event> events;
  {
    std::lock_guard lock(mutex_);
    finished_ = true;
    events.swap(events_);
  }
  if (events.empty() || events.size() > kMaxPlannedAllocations) return nullptr;
  auto plan = std::make_shared<ArenaPlan>();
  const size_t n = events.size();
  plan->sizes.resize(n);
  plan->offsets.assign(n, ArenaPlan::kPool);
  plan->predecessors.resize(n);
  std::vector<uint32_t> planned;
  for (size_t i = 0; i < n; ++i) {
    plan->sizes[i] = events[i].bytes;
    if (events[i].end != kAlive && events[i].bytes >= kMinPlannedBytes) planned.push_back(static_cast<uint32_t>(i));
  }
  if (planned.empty()) return nullptr;
  // Largest first, each at the lowest offset no allocation alive at the same time holds.
  std::stable_sort(planned.begin(), planned.end(),
                   [&](uint32_t a, uint32_t b) { return events[a].bytes > events[b].bytes; });
  std::vector<uint32_t> placed;
  std::vector<std::pair<size_t, size_t>> taken;  // [offset, end) of those alive meanwhile
  for (uint32_t i : planned) {
    taken.clear();
    for (uint32_t j : placed) {
      if (events[j].start < events[i].end && events[i].start < events[j].end) {
        taken.emplace_back(plan->offsets[j], plan->offsets[j] + events[j].bytes);
      }
    }
    std::sort(taken.begin(), taken.end());
    size_t offset = 0;
    for (const auto& [lo, hi] : taken) {
      if (lo >= offset + events[i].bytes) break;
      offset = std::max(offset, hi);
    }
    plan->offsets[i] = offset;
    plan->bytes = std::max(plan->bytes, offset + events[i].bytes);
    placed.push_back(i);
  }
  if (plan->bytes > kMaxBlockBytes) return nullptr;
  // Who must be gone before each allocation may have its bytes: the earlier
  // planned ones it overlaps in the block (by construction dead by then).
  for (uint32_t i : planned) {
    const size_t lo = plan->offsets[i], hi = lo + events[i].bytes;
    for (uint32_t j : planned) {
      if (j >= i) continue;
      const size_t jlo = plan->offsets[j], jhi = jlo + events[j].bytes;
      if (jlo < hi && lo < jhi) plan->predecessors[i].push_back(j);
    }
  }
  return plan;
}

std::shared_ptr<ArenaReplay> ArenaReplay::start(std::shared_ptr<const ArenaPlan> plan) {
  auto r = std::shared_ptr<ArenaReplay>(new ArenaReplay());
  r->block_ = BufferPool::instance().acquire_shared(plan->bytes);
  if (!r->block_) return nullptr;
  r->base_ = static_cast<char*>(r->block_.get());
  r->released_ = std::make_unique<std::atomic<bool>[]>(plan->sizes.size());
  r->plan_ = std::move(plan);
  return r;
}

std::shared_ptr<void> ArenaReplay::allocate(size_t bytes) {
  if (diverged_) return nullptr;
  const ArenaPlan& plan = *plan_;
  const size_t i = next_++;
  if (i >= plan.sizes.size() || plan.sizes[i] != bytes) {
    diverged_ = true;
    return nullptr;
  }
  if (plan.offsets[i] == ArenaPlan::kPool) return nullptr;
  for (uint32_t j : plan.predecessors[i]) {
    if (!released_[j].load(std::memory_order_acquire)) {
      diverged_ = true;  // a tensor lives longer than it did when recorded
      return nullptr;
    }
  }
  ++served_;
  // The block lives while any of its tensors does.
  return std::shared_ptr<void>(base_ + plan.offsets[i], [self = shared_from_this(), i](void*) mutable {
    self->released_[i].store(true, std::memory_order_release);
    self.reset();
  });
}

std::shared_ptr<AllocationScope> RunArenas::begin(uint64_t signature) {
  std::shared_ptr<const ArenaPlan> plan;
  {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(signature);
    if (it == entries_.end()) {
      if (entries_.size() >= kMaxSignatures) return nullptr;
      it = entries_.emplace(signature, Entry{}).first;
    }
    Entry& e = it->second;
    // The first run of a signature builds primitives and packs weights: record the second.
    if (e.off || e.runs++ == 0) return nullptr;
    if (!e.plan) {
      if (e.recording) return nullptr;
      e.recording = true;
      return std::make_shared<ArenaRecorder>();
    }
    plan = e.plan;
  }
  return ArenaReplay::start(std::move(plan));
}

void RunArenas::end(uint64_t signature, const std::shared_ptr<AllocationScope>& scope, bool ok) {
  if (!scope) return;
  std::shared_ptr<const ArenaPlan> plan;
  auto* recorder = dynamic_cast<ArenaRecorder*>(scope.get());
  if (recorder != nullptr) plan = recorder->finish();
  bool planned = false;
  {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(signature);
    if (it == entries_.end()) return;
    Entry& e = it->second;
    if (recorder == nullptr) {
      if (static_cast<const ArenaReplay&>(*scope).diverged() && e.plan) {
        // Record again, a few times; a signature whose runs keep differing stays on the pool.
        e.plan.reset();
        if (e.recordings >= kMaxRecordings) e.off = true;
      }
      return;
    }
    e.recording = false;
    if (!ok) return;
    ++e.recordings;
    e.plan = std::move(plan);
    e.off = e.plan == nullptr;
    planned = e.plan != nullptr;
  }
  if (planned) {
    // The pool still caches the recorded run's buffers, which planned runs do
    // not use: give them back rather than hold them beside the block.
    BufferPool::instance().trim();
  }
}

}  // namespace deskml::runtime
