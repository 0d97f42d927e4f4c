// Ensembles: a DAG of model calls and built-in steps, declared in the [ensemble] table of
// a model's config.toml (format and example in docs/ENSEMBLES.md).
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.hpp"
#include "serving/request.hpp"
#include "serving/tensors.hpp"

namespace deskml::serving {

class Step;

// Calls a model through the runtime asynchronously; `done` is called exactly once, on any
// thread (possibly before ModelCall returns). A ModelCall should not throw; if it does,
// the step fails with Internal (a later call of `done` is then ignored).
using ModelCall = std::function<void(const std::string& model, std::optional<int64_t> version, Tensors inputs,
                                     const InferOptions& options, std::function<void(Result<Tensors>)> done)>;

class Pipeline : public std::enable_shared_from_this<Pipeline> {
 public:
  // At most this many steps in one ensemble.
  static constexpr size_t kMaxSteps = 256;

  // Parses the [ensemble] table of a model's config.toml. Validates: known keys and kinds,
  // valid and unique names, every step input refers to an ensemble input or to an output
  // port of a step, no cycles, every step contributes to an ensemble output, and every
  // declared ensemble output is mapped. base_dir = the ensemble's folder (for labels files).
  // Errors are InvalidArgument, prefixed "ensemble: ", with config line numbers.
  static Result<std::shared_ptr<Pipeline>> parse(const toml::table& ensemble, const std::filesystem::path& base_dir);

  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  const std::vector<std::string>& input_names() const { return input_names_; }
  const std::vector<std::string>& output_names() const { return output_names_; }
  // Models the DAG calls, each once, in the order the config first names them.
  std::vector<std::string> model_dependencies() const;

  // Runs the DAG on `inputs` (exactly the declared input names). Model steps are started
  // through `call` as soon as their inputs are ready, so independent ones run concurrently;
  // built-in steps run on the thread that completed their last input (the caller's thread
  // for those ready at the start). `done` gets the declared outputs in order.
  //
  // The first failure wins: it cancels the CancelToken that every model call receives in
  // options.cancel, built-in and model steps not yet started are skipped, and `done` gets
  // that error. The caller's options.cancel and options.deadline are checked before each
  // step starts and when each finishes (Cancelled / DeadlineExceeded); the deadline is
  // also passed on to every model call. `done` is called exactly once, after every started
  // model call has completed: nothing of the run outlives it. The Pipeline is kept alive
  // until then. `call` is copied.
  void run(Tensors inputs, const InferOptions& options, const ModelCall& call,
           std::function<void(Result<Tensors>)> done) const;

 private:
  // Where a value comes from: ensemble input `name` (step < 0) or output port `name` of steps_[step].
  struct Ref {
    int64_t step = -1;
    std::string name;
  };
  struct StepNode;
  struct RunState;
  using Ready = std::vector<size_t>;

  Pipeline();
  Status build(const toml::table& ensemble, const std::filesystem::path& base_dir);
  Status parse_step(const toml::table& table, const std::filesystem::path& base_dir,
                    std::vector<std::vector<std::pair<std::string, std::string>>>& raw_inputs);
  Result<Ref> resolve(const std::string& ref, const std::string& where) const;
  Status link(const std::vector<std::vector<std::pair<std::string, std::string>>>& raw_inputs,
              const toml::table* output_map);

  static void drive(const std::shared_ptr<RunState>& state, Ready ready);
  static void start_model(const std::shared_ptr<RunState>& state, size_t index, Tensors inputs);
  static Ready complete(const std::shared_ptr<RunState>& state, size_t index, Result<Tensors> result);
  static void release(const std::shared_ptr<RunState>& state);

  std::vector<std::string> input_names_;
  std::vector<std::string> output_names_;
  std::vector<std::unique_ptr<StepNode>> steps_;  // in a topological order
  std::vector<Ref> outputs_;                      // the source of each output_names_ entry
};

}  // namespace deskml::serving
