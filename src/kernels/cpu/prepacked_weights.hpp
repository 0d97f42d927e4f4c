// Weights packed ahead of time. A plan cache (src/plan_cache) stores the packed
// copies that a session's warm-up made and offers them back at the next load;
// ReorderedWeights then takes the stored copy instead of reordering again.
// Layouts travel as opaque byte strings (a oneDNN memory descriptor's bytes),
// so nothing outside the CPU kernels needs oneDNN's types.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace deskml::kernels::cpu {

// One packed copy of some weights: the plain weights at `source`, read through
// layout `user`, reordered into layout `packed`, are the `size` bytes at `data`.
struct PackedCopy {
  const void* source = nullptr;
  std::string user, packed;
  const void* data = nullptr;
  size_t size = 0;
  std::shared_ptr<const void> storage;  // keeps `data` (and, when recorded, nothing else) alive
};

// What the packed layouts and the graph rewrites chosen for this process depend
// on: oneDNN's version, the instruction set it runs with, and the one deskml's
// own kernels picked. A plan cache is valid only where this is unchanged.
std::string packing_signature();

// Offers `copies` to later weight reorders for as long as `owner` lives. Every
// copy's source and data must lie in memory that `owner` keeps alive and
// unchanged (a plan cache's read-only mapping): while it lives, no other
// weights can sit at the same address. The layouts are untrusted bytes here;
// the reorder compares them with the layouts it wants and checks the size.
void offer_prepacked(const std::vector<PackedCopy>& copies, const std::shared_ptr<const void>& owner);

// The offered copies of the weights at `source` (each with its owner as
// storage), usually one per layout; empty when none.
std::vector<PackedCopy> find_prepacked(const void* source);

// While alive, records the weight reorders made on this thread (a session's
// warm-up, whose packed copies a plan cache then stores). Recorders nest; the
// innermost records.
class PackRecorder {
 public:
  PackRecorder();
  ~PackRecorder();
  PackRecorder(const PackRecorder&) = delete;
  PackRecorder& operator=(const PackRecorder&) = delete;
  // What was recorded so far, in order; the recorder starts over.
  std::vector<PackedCopy> take();
  // The recorder active on this thread, or nullptr.
  static PackRecorder* current();
  void record(PackedCopy copy) { copies_.push_back(std::move(copy)); }

 private:
  std::vector<PackedCopy> copies_;
  PackRecorder* previous_;
};

}  // namespace deskml::kernels::cpu
