// The on-disk plan cache: a model as the optimizer left it, with the weights
// that its warm-up packed, stored next to the model file so that the next load
// skips parsing, optimizing and weight packing. One file per model; its key
// (the model file's hash, deskml's version, the CPU's packing signature and the
// session options that shape the plan) must match exactly, or it is ignored and
// rewritten. docs/PLAN_CACHE.md describes the format.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "graph/graph.hpp"
#include "kernels/cpu/prepacked_weights.hpp"
#include "plan_cache/model_codec.hpp"

namespace deskml::plan_cache {

// The key of `model_file` for a plan built with `options` (a text naming every
// setting that changes the optimized graph). Reads and hashes the whole file.
Result<std::string> plan_key(const std::filesystem::path& model_file, const std::string& options);

// Where the plan of `model_file` is cached: `<model file>.deskml-plan` beside it,
// or in `dir` (named after the model's absolute path) when `dir` is not empty.
std::filesystem::path plan_path(const std::filesystem::path& model_file, const std::filesystem::path& dir = {});

struct CachedPlan {
  graph::Model model;                            // its tensors are views of the mapped file
  std::vector<kernels::cpu::PackedCopy> packed;  // sources point into model's initializers
  std::shared_ptr<void> mapping;                 // the mapped file (also held by every tensor)
};

// The plan at `path` when its key is `key`. NotFound when there is no file or
// it was made for another key (another model, version, CPU or options);
// InvalidModel when the file is damaged.
Result<CachedPlan> read_plan(const std::filesystem::path& path, const std::string& key);

// Writes `model` and the packed copies of its initializers to `path`: into a
// temporary file beside it, flushed to disk, then renamed over `path`, so a
// reader never sees half a file. Copies whose source is not an initializer of
// `model` are left out.
Status write_plan(const std::filesystem::path& path, const std::string& key, const graph::Model& model,
                  const std::vector<kernels::cpu::PackedCopy>& packed);

// write_plan's second half: the header, `structure` (encode_model's bytes, then
// the packed copies' list) and the blobs, written atomically as above. The fuzzer
// writes arbitrary structures with it.
Status write_plan_file(const std::filesystem::path& path, const std::string& key, std::string_view structure,
                       const BlobLayout& blobs);

}  // namespace deskml::plan_cache
