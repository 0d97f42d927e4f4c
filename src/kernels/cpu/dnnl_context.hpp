// The process-wide oneDNN engine and the glue between deskml Tensors and
// dnnl::memory: descriptors from shapes, zero-copy wrapping, execution with a
// caller-owned scratchpad, error translation, and a small bounded cache for
// the primitives a node builds per input shape.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/tensor.hpp"

namespace deskml::kernels::cpu::onednn {

// Channels per block of nChw16c, the layout of the optimizer's blocked regions:
// a tensor [N, C, H, W] is held as [N, C/16, H, W, 16] (the `blocked` attribute's value).
inline constexpr int64_t kChannelBlock = 16;

// One CPU engine for the whole process; oneDNN engines are thread-safe.
const dnnl::engine& engine();

dnnl::memory::dims to_dims(const Shape& shape);
// Row-major strides of `dims` (the plain layout a Tensor has).
dnnl::memory::dims plain_strides(const dnnl::memory::dims& dims);
// A plain (row-major) float32 descriptor.
dnnl::memory::desc plain_desc(const dnnl::memory::dims& dims,
                              dnnl::memory::data_type dt = dnnl::memory::data_type::f32);
dnnl::memory::desc strided_desc(const dnnl::memory::dims& dims, const dnnl::memory::dims& strides,
                                dnnl::memory::data_type dt = dnnl::memory::data_type::f32);

// Wraps a tensor's storage without copying. oneDNN never writes a source
// argument, so wrapping a const input is safe.
dnnl::memory wrap(const dnnl::memory::desc& md, const Tensor& t);
dnnl::memory wrap(const dnnl::memory::desc& md, void* data);

// A growing, page-aligned buffer, for scratch memory kept per thread
// (thread_local): primitives' scratchpads, staged activations, the bands of
// a pooled convolution. A primitive runs to completion on the calling thread
// (oneDNN's own workers only use it inside that call), so such a buffer is
// never shared.
class ScratchBuffer {
 public:
  ScratchBuffer() = default;
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  ~ScratchBuffer();
  // At least `bytes`, keeping the contents only while it need not grow; throws std::bad_alloc.
  void* reserve(size_t bytes);

 private:
  void* data_ = nullptr;
  size_t capacity_ = 0;
};

// Attributes every deskml primitive starts from: a user-managed scratchpad, so
// a cached primitive can run on any thread and concurrently (oneDNN's
// library-managed scratchpad is shared per primitive and not safe for that).
dnnl::primitive_attr base_attr();

// Runs `prim` on a fresh stream and waits. `scratchpad` is the primitive
// descriptor's scratchpad_desc(); the memory comes from a per-thread buffer.
void execute(const dnnl::primitive& prim, const dnnl::memory::desc& scratchpad,
             std::unordered_map<int, dnnl::memory> args);

// A primitive that wants its source and destination in other layouts than the
// caller's tensors have (a Winograd convolution works on blocked activations):
// the reorders into and out of those layouts, built once with the primitive.
struct Staging {
  dnnl::memory::desc src, dst;     // the layouts the primitive runs on
  dnnl::reorder to_src, from_dst;  // caller's source -> src; dst -> caller's destination
  dnnl::memory::desc to_src_scratch, from_dst_scratch;
  // > 1: the primitive takes one image of a batch of `images`, whose staged
  // layouts hold the images one after another (`image_src`, `image_dst`).
  int64_t images = 1;
  dnnl::memory::desc image_src, image_dst;
  Staging() = default;
  Staging(const dnnl::memory::desc& user_src, const dnnl::memory::desc& staged_src,
          const dnnl::memory::desc& staged_dst, const dnnl::memory::desc& user_dst);
};

// execute() with the source reordered into `staging.src` first and the result
// reordered from `staging.dst` into args' DST after (the primitive running once
// per image when staging.images > 1); the staged copies live in per-thread
// buffers.
void execute_staged(const dnnl::primitive& prim, const dnnl::memory::desc& scratchpad,
                    std::unordered_map<int, dnnl::memory> args, const Staging& staging);

// The dnnl::memory objects one cached primitive executes with, kept per
// thread so that a run only swaps their data pointers: creating them and an
// argument map cost about 1 us per node, 4% of MobileNetV2's run. A few slots,
// each claimed by the first thread that runs the primitive there; they go with
// the primitive (nothing piles up per thread when models are unloaded).
class ArgSlots {
 public:
  static constexpr int kSlots = 4;
  static constexpr int kArgs = 8;
  struct Slot {
    std::atomic<std::thread::id> owner{};
    int count = 0;
    int arg[kArgs] = {};
    dnnl::memory memory[kArgs];
  };
  // This thread's slot, claimed on first use; nullptr when all are taken.
  Slot* mine();

 private:
  Slot slots_[kSlots];
};

// One execution's arguments, from the primitive's ArgSlots (temporaries when
// the calling thread has no slot there).
class FastArgs {
 public:
  explicit FastArgs(ArgSlots& slots) : slot_(slots.mine()) {}
  void add(int arg, const dnnl::memory::desc& md, const void* data);
  void add(const int arg, const dnnl::memory& mem) { push(arg, mem.get()); }
  // Runs `prim` on this thread's stream and waits; the scratchpad comes from
  // the per-thread buffer, as with execute().
  void execute(const dnnl::primitive& prim, const dnnl::memory::desc& scratchpad);

 private:
  void push(int arg, dnnl_memory_t mem);
  ArgSlots::Slot* slot_;
  int n_ = 0;
  dnnl_exec_arg_t args_[ArgSlots::kArgs];
  dnnl::memory temporaries_[ArgSlots::kArgs];  // without a slot
};

// Copies `from` into a new memory with layout `to` (a weights reorder).
dnnl::memory reorder_to(const dnnl::memory& from, const dnnl::memory::desc& to);

// Turns a dnnl::error into an Error: Unsupported when oneDNN has no
// implementation for the problem, InvalidArgument otherwise.
[[noreturn]] void rethrow(const dnnl::error& e, const std::string& what);

// Packed weights for one execution: `storage` keeps the buffer `memory` points
// into alive until the execution is over, however the cache moves on meanwhile.
struct PackedWeights {
  dnnl::memory memory;
  std::shared_ptr<void> storage;
};

// Weights reordered into a primitive's preferred layout, remembered together
// with the tensor they came from. The source tensor is held so its storage
// cannot be freed and reused while the cache compares by address; tensors are
// immutable once produced, so same storage means same values. Weights that are
// an input change from run to run: a new copy is packed each time, and a run on
// another thread keeps the copy it was given (PackedWeights::storage).
// A copy packed ahead of time (prepacked_weights.hpp) is taken instead of
// reordering when one is offered; reorders are reported to a PackRecorder.
class ReorderedWeights {
 public:
  // The weights in layout `want`, reordering from `user` (a plain view of `w`) when `w` changed.
  PackedWeights get(const Tensor& w, const dnnl::memory::desc& user, const dnnl::memory::desc& want);

 private:
  bool take_prepacked(const Tensor& w, const dnnl::memory::desc& user, const dnnl::memory::desc& want);

  std::mutex mutex_;
  Tensor source_;
  std::shared_ptr<void> storage_;  // the reordered copy (huge pages when large)
  dnnl::memory reordered_;
};

// The reordered weights a node's primitives share: one copy per layout, alive
// while some cached primitive uses it. Primitives built for other input shapes
// (a batch of 8 after the warm-up's batch of 1) mostly want the weights in the
// same layout, and then share one copy instead of each holding its own.
class SharedWeights {
 public:
  std::shared_ptr<ReorderedWeights> for_layout(const dnnl::memory::desc& want);

 private:
  std::mutex mutex_;
  std::vector<std::pair<dnnl::memory::desc, std::weak_ptr<ReorderedWeights>>> layouts_;
};

// A small per-node cache from a shape key to a built primitive; keeps the
// `capacity` most recently used entries. Entries are shared_ptr so one evicted
// while another thread still runs it stays alive until that run ends.
template <typename Entry>
class PrimitiveCache {
 public:
  explicit PrimitiveCache(size_t capacity = 4) : capacity_(capacity) {}

  // The entry for `key`, built by make() (returning shared_ptr<Entry>) on a miss.
  template <typename Make>
  std::shared_ptr<Entry> get(const std::vector<int64_t>& key, Make&& make) {
    std::lock_guard lock(mutex_);
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->first == key) {
        if (it != entries_.begin()) entries_.splice(entries_.begin(), entries_, it);
        return entries_.front().second;
      }
    }
    std::shared_ptr<Entry> entry = make();
    entries_.emplace_front(key, entry);
    while (entries_.size() > capacity_) entries_.pop_back();
    return entry;
  }

 private:
  size_t capacity_;
  std::mutex mutex_;
  std::list<std::pair<std::vector<int64_t>, std::shared_ptr<Entry>>> entries_;
};

// Appends a shape to a cache key (rank first, so [2,3]+[4] differs from [2]+[3,4]).
inline void append_key(std::vector<int64_t>& key, const Shape& shape) {
  key.push_back(static_cast<int64_t>(shape.size()));
  key.insert(key.end(), shape.begin(), shape.end());
}

// One float32 (batched) matrix product C[b] = A[b] * B[b] with row-major
// operands: A is [batch, m, k], B is [batch, k, n], C is [batch, m, n].
// For one-off products (Einsum); oneDNN's own primitive cache makes repeated
// shapes cheap.
void matmul_f32(int64_t batch, int64_t m, int64_t n, int64_t k, const float* a, const float* b, float* c);

}  // namespace deskml::kernels::cpu::onednn
