#include "kernels/cpu/dnnl_context.hpp"

#include <cstdlib>
#include <cstring>
#include <new>

#include "core/buffer_pool.hpp"
#include "kernels/cpu/prepacked_weights.hpp"

namespace deskml::kernels::cpu::onednn {

ScratchBuffer::~ScratchBuffer() { std::free(data_); }

void* ScratchBuffer::reserve(size_t bytes) {
  if (bytes <= capacity_) return data_;
  std::free(data_);
  data_ = nullptr;
  capacity_ = 0;
  const size_t rounded = (bytes + 4095) / 4096 * 4096;
  data_ = std::aligned_alloc(4096, rounded);
  if (data_ == nullptr) throw std::bad_alloc();
  capacity_ = rounded;
  return data_;
}

namespace {

ScratchBuffer& thread_scratch() {
  thread_local ScratchBuffer buffer;
  return buffer;
}

// One stream per thread: in-order CPU streams are cheap to keep and not free to create.
dnnl::stream& thread_stream() {
  thread_local dnnl::stream stream(engine());
  return stream;
}

}  // namespace

const dnnl::engine& engine() {
  static const dnnl::engine kEngine(dnnl::engine::kind::cpu, 0);
  return kEngine;
}

dnnl::memory::dims to_dims(const Shape& shape) { return dnnl::memory::dims(shape.begin(), shape.end()); }

dnnl::memory::dims plain_strides(const dnnl::memory::dims& dims) {
  dnnl::memory::dims strides(dims.size(), 1);
  for (size_t i = dims.size(); i-- > 1;) strides[i - 1] = strides[i] * dims[i];
  return strides;
}

dnnl::memory::desc plain_desc(const dnnl::memory::dims& dims, dnnl::memory::data_type dt) {
  return dnnl::memory::desc(dims, dt, plain_strides(dims));
}

dnnl::memory::desc strided_desc(const dnnl::memory::dims& dims, const dnnl::memory::dims& strides,
                                dnnl::memory::data_type dt) {
  return dnnl::memory::desc(dims, dt, strides);
}

dnnl::memory wrap(const dnnl::memory::desc& md, const Tensor& t) {
  return dnnl::memory(md, engine(), const_cast<void*>(t.raw_data()));
}

dnnl::memory wrap(const dnnl::memory::desc& md, void* data) { return dnnl::memory(md, engine(), data); }

dnnl::primitive_attr base_attr() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

void execute(const dnnl::primitive& prim, const dnnl::memory::desc& scratchpad,
             std::unordered_map<int, dnnl::memory> args) {
  const size_t bytes = scratchpad.get_size();
  if (bytes > 0) {
    args.insert({DNNL_ARG_SCRATCHPAD, dnnl::memory(scratchpad, engine(), thread_scratch().reserve(bytes))});
  }
  dnnl::stream& stream = thread_stream();
  prim.execute(stream, args);
  stream.wait();
}

ArgSlots::Slot* ArgSlots::mine() {
  const std::thread::id self = std::this_thread::get_id();
  for (Slot& s : slots_) {
    if (s.owner.load(std::memory_order_acquire) == self) return &s;
  }
  for (Slot& s : slots_) {
    std::thread::id none{};
    if (s.owner.compare_exchange_strong(none, self, std::memory_order_acq_rel)) return &s;
  }
  return nullptr;
}

void FastArgs::push(int arg, dnnl_memory_t mem) {
  if (n_ == ArgSlots::kArgs) throw dnnl::error(dnnl_invalid_arguments, "too many arguments");
  args_[n_++] = {arg, mem};
}

void FastArgs::add(int arg, const dnnl::memory::desc& md, const void* data) {
  void* handle = const_cast<void*>(data);
  if (slot_ == nullptr) {
    temporaries_[n_] = dnnl::memory(md, engine(), handle);
    push(arg, temporaries_[n_].get());
    return;
  }
  for (int i = 0; i < slot_->count; ++i) {
    if (slot_->arg[i] == arg) {
      slot_->memory[i].set_data_handle(handle);
      push(arg, slot_->memory[i].get());
      return;
    }
  }
  if (slot_->count == ArgSlots::kArgs) throw dnnl::error(dnnl_invalid_arguments, "too many arguments");
  const int i = slot_->count++;
  slot_->arg[i] = arg;
  slot_->memory[i] = dnnl::memory(md, engine(), handle);
  push(arg, slot_->memory[i].get());
}

void FastArgs::execute(const dnnl::primitive& prim, const dnnl::memory::desc& scratchpad) {
  const size_t bytes = scratchpad.get_size();
  if (bytes > 0) add(DNNL_ARG_SCRATCHPAD, scratchpad, thread_scratch().reserve(bytes));
  dnnl::stream& stream = thread_stream();
  dnnl::error::wrap_c_api(dnnl_primitive_execute(prim.get(), stream.get(), n_, args_), "could not execute a primitive");
  stream.wait();
}

namespace {

dnnl::reorder make_reorder(const dnnl::memory::desc& from, const dnnl::memory::desc& to, dnnl::memory::desc& scratch) {
  const dnnl::reorder::primitive_desc pd(engine(), from, engine(), to, base_attr());
  scratch = pd.scratchpad_desc();
  return dnnl::reorder(pd);
}

}  // namespace

Staging::Staging(const dnnl::memory::desc& user_src, const dnnl::memory::desc& staged_src,
                 const dnnl::memory::desc& staged_dst, const dnnl::memory::desc& user_dst)
    : src(staged_src),
      dst(staged_dst),
      to_src(make_reorder(user_src, staged_src, to_src_scratch)),
      from_dst(make_reorder(staged_dst, user_dst, from_dst_scratch)) {}

void execute_staged(const dnnl::primitive& prim, const dnnl::memory::desc& scratchpad,
                    std::unordered_map<int, dnnl::memory> args, const Staging& staging) {
  thread_local ScratchBuffer src_buffer, dst_buffer;
  const dnnl::memory user_src = args.at(DNNL_ARG_SRC), user_dst = args.at(DNNL_ARG_DST);
  const dnnl::memory src(staging.src, engine(), src_buffer.reserve(staging.src.get_size()));
  const dnnl::memory dst(staging.dst, engine(), dst_buffer.reserve(staging.dst.get_size()));
  execute(staging.to_src, staging.to_src_scratch, {{DNNL_ARG_FROM, user_src}, {DNNL_ARG_TO, src}});
  if (staging.images <= 1) {
    args[DNNL_ARG_SRC] = src;
    args[DNNL_ARG_DST] = dst;
    execute(prim, scratchpad, std::move(args));
  } else {
    auto* sp = static_cast<char*>(src.get_data_handle());
    auto* dp = static_cast<char*>(dst.get_data_handle());
    const size_t src_step = staging.image_src.get_size(), dst_step = staging.image_dst.get_size();
    for (int64_t n = 0; n < staging.images; ++n) {
      args[DNNL_ARG_SRC] = dnnl::memory(staging.image_src, engine(), sp + n * src_step);
      args[DNNL_ARG_DST] = dnnl::memory(staging.image_dst, engine(), dp + n * dst_step);
      execute(prim, scratchpad, args);
    }
  }
  execute(staging.from_dst, staging.from_dst_scratch, {{DNNL_ARG_FROM, dst}, {DNNL_ARG_TO, user_dst}});
}

dnnl::memory reorder_to(const dnnl::memory& from, const dnnl::memory::desc& to) {
  dnnl::memory out(to, engine());
  dnnl::stream stream(engine());
  dnnl::reorder(from, out).execute(stream, const_cast<dnnl::memory&>(from), out);
  stream.wait();
  return out;
}

void rethrow(const dnnl::error& e, const std::string& what) {
  const std::string message = what + ": oneDNN: " + e.what();
  if (e.status == dnnl_unimplemented) throw_status(unsupported(message));
  if (e.status == dnnl_out_of_memory) throw std::bad_alloc();
  throw_status(invalid_argument(message));
}

namespace {

std::string desc_bytes(const dnnl::memory::desc& md) {
  return std::string(reinterpret_cast<const char*>(&md.data), sizeof(md.data));
}

}  // namespace

PackedWeights ReorderedWeights::get(const Tensor& w, const dnnl::memory::desc& user, const dnnl::memory::desc& want) {
  std::lock_guard lock(mutex_);
  if (!source_.defined() || source_.raw_data() != w.raw_data() || reordered_.get_desc() != want) {
    source_ = Tensor();
    if (!take_prepacked(w, user, want)) {
      // Packed weights are read in full on every run: large ones go on huge pages,
      // which saves the TLB misses of streaming tens of MB through 4 KiB pages.
      auto storage = allocate_large(want.get_size());
      reordered_ = dnnl::memory(want, engine(), storage.get());
      storage_ = std::move(storage);
      dnnl::memory from = wrap(user, w);
      dnnl::stream stream(engine());
      dnnl::reorder(from, reordered_).execute(stream, from, reordered_);
      stream.wait();
      if (PackRecorder* recorder = PackRecorder::current()) {
        recorder->record({w.raw_data(), desc_bytes(user), desc_bytes(want), storage_.get(), want.get_size(), storage_});
      }
    }
    source_ = w;
  }
  return {reordered_, storage_};
}

bool ReorderedWeights::take_prepacked(const Tensor& w, const dnnl::memory::desc& user, const dnnl::memory::desc& want) {
  for (PackedCopy& c : find_prepacked(w.raw_data())) {
    // The offered layouts are untrusted bytes: used only when they describe
    // exactly the layouts wanted here, with the size those take.
    if (c.user.size() != sizeof(dnnl_memory_desc_t) || c.packed.size() != sizeof(dnnl_memory_desc_t)) continue;
    dnnl::memory::desc offered_user, offered_packed;
    std::memcpy(&offered_user.data, c.user.data(), sizeof(dnnl_memory_desc_t));
    std::memcpy(&offered_packed.data, c.packed.data(), sizeof(dnnl_memory_desc_t));
    if (offered_user != user || offered_packed != want || c.size != want.get_size()) continue;
    reordered_ = dnnl::memory(want, engine(), const_cast<void*>(c.data));  // oneDNN only reads weights
    storage_ = std::const_pointer_cast<void>(c.storage);
    return true;
  }
  return false;
}

std::shared_ptr<ReorderedWeights> SharedWeights::for_layout(const dnnl::memory::desc& want) {
  std::lock_guard lock(mutex_);
  std::erase_if(layouts_, [](const auto& entry) { return entry.second.expired(); });
  for (const auto& [desc, weights] : layouts_) {
    if (desc == want) {
      if (auto live = weights.lock()) return live;
    }
  }
  auto made = std::make_shared<ReorderedWeights>();
  layouts_.emplace_back(want, made);
  return made;
}

void matmul_f32(int64_t batch, int64_t m, int64_t n, int64_t k, const float* a, const float* b, float* c) {
  using dnnl::memory;
  const memory::dims ad = {batch, m, k}, bd = {batch, k, n}, cd = {batch, m, n};
  try {
    const auto a_md = plain_desc(ad), b_md = plain_desc(bd), c_md = plain_desc(cd);
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), base_attr(), engine());
    execute(dnnl::matmul(pd), pd.scratchpad_desc(),
            {{DNNL_ARG_SRC, wrap(a_md, const_cast<float*>(a))},
             {DNNL_ARG_WEIGHTS, wrap(b_md, const_cast<float*>(b))},
             {DNNL_ARG_DST, wrap(c_md, c)}});
  } catch (const dnnl::error& e) {
    rethrow(e, "matmul");
  }
}

}  // namespace deskml::kernels::cpu::onednn
