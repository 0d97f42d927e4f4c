// deskml inspect MODEL: what a model is, without running it.
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "graph/shape_inference.hpp"
#include "kernels/cpu/cpu_registry.hpp"
#include "onnx/model_loader.hpp"
#include "optimizer/optimizer.hpp"

extern int g_exit_code;

namespace deskml::cli {
namespace {

struct Histogram {
  std::map<std::string, int64_t> ops;
  int64_t nodes = 0;
};

void count_ops(const graph::Graph& g, Histogram& h) {
  for (const auto& n : g.nodes) {
    ++h.ops[n.domain.empty() ? n.op_type : n.domain + "." + n.op_type];
    ++h.nodes;
    for (const auto& [_, attr] : n.attributes) {
      if (const auto* sub = std::get_if<graph::GraphPtr>(&attr)) count_ops(**sub, h);
    }
  }
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB"};
  int u = 0;
  while (b >= 1024 && u < 3) {
    b /= 1024;
    ++u;
  }
  std::ostringstream s;
  s << std::fixed << std::setprecision(u ? 1 : 0) << b << " " << units[u];
  return s.str();
}

struct InspectOptions {
  bool json = false;
  bool optimized = false;  // describe the graph as the optimizer leaves it
  bool nodes = false;      // list every node
};

Status inspect(const std::string& path, const InspectOptions& opts) {
  const bool json = opts.json;
  DESKML_ASSIGN_OR_RETURN(graph::Model model, onnx_import::load_model(path));
  auto inferred = graph::infer_shapes(model.graph);
  std::vector<optimizer::PassResult> passes;
  if (opts.optimized) {
    DESKML_RETURN_IF_ERROR(optimizer::optimize(model, kernels::cpu::cpu_registry(), {}, &passes));
    inferred = graph::infer_shapes(model.graph);
  }
  const auto& g = model.graph;
  // Declared output types win; inference fills in what the file leaves open.
  auto output_type = [&](const graph::ValueInfo& vi) {
    if (vi.type.shape && vi.type.dtype != DataType::kUndefined) return vi.type.to_string();
    auto it = g.value_types.find(vi.name);
    return it != g.value_types.end() ? it->second.to_string() + " (inferred)" : vi.type.to_string();
  };
  Histogram h;
  count_ops(g, h);
  int64_t params = 0, param_bytes = 0;
  for (const auto& [_, t] : g.initializers) {
    params += t.numel();
    param_bytes += static_cast<int64_t>(t.nbytes());
  }
  const auto& registry = kernels::cpu::cpu_registry();
  std::vector<std::string> unsupported_ops;
  for (const auto& [op, _] : h.ops) {
    const size_t dot = op.rfind('.');
    const std::string domain = dot == std::string::npos ? "" : op.substr(0, dot);
    const std::string name = dot == std::string::npos ? op : op.substr(dot + 1);
    if (!registry.supports(name, domain, static_cast<int>(model.opset(domain)))) unsupported_ops.push_back(op);
  }
  auto is_initializer = [&](const std::string& n) { return g.initializers.count(n) != 0; };

  if (json) {
    nlohmann::json j;
    j["ir_version"] = model.ir_version;
    j["producer"] = model.producer_name + (model.producer_version.empty() ? "" : " " + model.producer_version);
    for (const auto& [d, v] : model.opsets) j["opsets"][d.empty() ? "ai.onnx" : d] = v;
    for (const auto& vi : g.inputs) {
      if (!is_initializer(vi.name)) j["inputs"].push_back({{"name", vi.name}, {"type", vi.type.to_string()}});
    }
    for (const auto& vi : g.outputs) j["outputs"].push_back({{"name", vi.name}, {"type", output_type(vi)}});
    if (inferred.ok()) {
      j["shape_inference"] = {{"values", inferred->values}, {"typed", inferred->typed},
                              {"shaped", inferred->fully_shaped}};
    } else {
      j["shape_inference"] = {{"error", inferred.status().to_string()}};
    }
    j["ops"] = h.ops;
    j["nodes"] = h.nodes;
    j["parameters"] = params;
    j["parameter_bytes"] = param_bytes;
    j["unsupported_ops"] = unsupported_ops;
    for (const auto& p : passes) j["passes"].push_back({{"pass", p.pass}, {"rewrites", p.rewrites}});
    if (opts.nodes) {
      for (const auto& n : g.nodes) {
        j["node_list"].push_back({{"name", n.name}, {"op", (n.domain.empty() ? "" : n.domain + ".") + n.op_type},
                                  {"inputs", n.inputs}, {"outputs", n.outputs}});
      }
    }
    std::cout << j.dump(2) << "\n";
    return Status::Ok();
  }
  std::cout << "model:      " << path << "\n";
  std::cout << "producer:   " << (model.producer_name.empty() ? "(unknown)" : model.producer_name) << " "
            << model.producer_version << "\n";
  std::cout << "ir version: " << model.ir_version << "\n";
  std::cout << "opsets:     ";
  for (const auto& [d, v] : model.opsets) std::cout << (d.empty() ? "ai.onnx" : d) << " " << v << "  ";
  std::cout << "\n\ninputs:\n";
  for (const auto& vi : g.inputs) {
    if (!is_initializer(vi.name)) std::cout << "  " << vi.name << ": " << vi.type.to_string() << "\n";
  }
  std::cout << "outputs:\n";
  for (const auto& vi : g.outputs) std::cout << "  " << vi.name << ": " << output_type(vi) << "\n";
  std::cout << "\nparameters: " << params << " (" << human_bytes(static_cast<double>(param_bytes)) << ")\n";
  std::cout << "nodes:      " << h.nodes << "\n";
  if (inferred.ok()) {
    std::cout << "inference:  " << inferred->typed << " of " << inferred->values << " intermediate values typed, "
              << inferred->fully_shaped << " fully shaped\n";
  } else {
    std::cout << "inference:  " << inferred.status().to_string() << "\n";
  }
  std::cout << "\nops:\n";
  std::vector<std::pair<int64_t, std::string>> sorted;
  for (const auto& [op, n] : h.ops) sorted.emplace_back(-n, op);
  std::sort(sorted.begin(), sorted.end());
  for (const auto& [n, op] : sorted) std::cout << "  " << std::setw(6) << -n << "  " << op << "\n";
  if (!passes.empty()) {
    std::cout << "\noptimizer passes (rewrites):\n";
    for (const auto& p : passes) std::cout << "  " << std::setw(6) << p.rewrites << "  " << p.pass << "\n";
  }
  if (opts.nodes) {
    std::cout << "\nnodes:\n";
    for (const auto& n : g.nodes) {
      std::cout << "  " << (n.domain.empty() ? "" : n.domain + ".") << n.op_type << " '" << n.name << "' (";
      for (size_t i = 0; i < n.inputs.size(); ++i) std::cout << (i ? ", " : "") << n.inputs[i];
      std::cout << ") -> (";
      for (size_t i = 0; i < n.outputs.size(); ++i) std::cout << (i ? ", " : "") << n.outputs[i];
      std::cout << ")\n";
    }
  }
  if (!unsupported_ops.empty()) {
    std::cout << "\nnot supported by this build:";
    for (const auto& op : unsupported_ops) std::cout << " " << op;
    std::cout << "\n";
  }
  return Status::Ok();
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto opts = std::make_shared<InspectOptions>();
  auto* cmd = app.add_subcommand("inspect", "Show a model's opsets, inputs, outputs, op histogram and parameters");
  cmd->add_option("model", *path, "Path to the .onnx model")->required()->check(CLI::ExistingFile);
  cmd->add_flag("--json", opts->json, "Print one JSON object instead of text");
  cmd->add_flag("--optimized", opts->optimized,
                "Describe the graph after deskml's optimizer (fusions, layout), with what each pass changed");
  cmd->add_flag("--nodes", opts->nodes, "List every node with its inputs and outputs");
  cmd->callback([path, opts] {
    Status st = inspect(*path, *opts);
    if (!st.ok()) {
      std::cerr << "deskml inspect: " << st.to_string() << "\n";
      g_exit_code = kExitFailure;
    }
  });
}

}  // namespace deskml::cli
