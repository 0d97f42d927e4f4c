#include "kernels/cpu/prepacked_weights.hpp"

#include <algorithm>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>
#include <utility>

#include "kernels/cpu/elementwise_isa.hpp"

namespace deskml::kernels::cpu {

namespace {

struct Offered {
  PackedCopy copy;  // storage empty: the owner below decides its life
  std::weak_ptr<const void> owner;
};

struct Registry {
  std::mutex mutex;
  std::unordered_multimap<const void*, Offered> by_source;

  void prune() {
    std::erase_if(by_source, [](const auto& entry) { return entry.second.owner.expired(); });
  }
};

Registry& registry() {
  static Registry* r = new Registry();  // never destroyed: sessions may outlive static destruction order
  return *r;
}

thread_local PackRecorder* active_recorder = nullptr;

}  // namespace

std::string packing_signature() {
  const dnnl_version_t* v = dnnl_version();
  return "onednn " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch) + " " +
         (v->hash ? v->hash : "") + " isa " + std::to_string(static_cast<int>(dnnl::get_effective_cpu_isa())) +
         " desc " + std::to_string(sizeof(dnnl_memory_desc_t)) + " avx2 " + (ew::has_avx2_fma() ? "1" : "0") +
         " avx512 " + (ew::has_avx512() ? "1" : "0");
}

void offer_prepacked(const std::vector<PackedCopy>& copies, const std::shared_ptr<const void>& owner) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.prune();
  for (const PackedCopy& c : copies) {
    Offered o{c, owner};
    o.copy.storage.reset();
    r.by_source.emplace(c.source, std::move(o));
  }
}

std::vector<PackedCopy> find_prepacked(const void* source) {
  Registry& r = registry();
  std::vector<PackedCopy> found;
  std::lock_guard lock(r.mutex);
  if (r.by_source.empty()) return found;
  auto [begin, end] = r.by_source.equal_range(source);
  for (auto it = begin; it != end; ++it) {
    std::shared_ptr<const void> alive = it->second.owner.lock();
    if (!alive) continue;
    PackedCopy c = it->second.copy;
    c.storage = std::move(alive);
    found.push_back(std::move(c));
  }
  return found;
}

PackRecorder::PackRecorder() : previous_(active_recorder) { active_recorder = this; }

PackRecorder::~PackRecorder() { active_recorder = previous_; }

PackRecorder* PackRecorder::current() { return active_recorder; }

std::vector<PackedCopy> PackRecorder::take() { return std::exchange(copies_, {}); }

}  // namespace deskml::kernels::cpu
