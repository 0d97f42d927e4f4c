// config.toml parsing, model names and the repository's refusal to leave its folder.
#include <gtest/gtest.h>

#include "serving/model_config.hpp"
#include "serving/model_name.hpp"
#include "serving/model_repository.hpp"
#include "serving/request.hpp"
#include "serving_models.hpp"

namespace deskml::serving {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::TempDir;
using testing::write_file;

TEST(ServingConfig, DefaultsWhenEmpty) {
  auto c = parse_model_config("", "config.toml");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->max_batch_size, 0);
  EXPECT_EQ(c->instances, 1);
  EXPECT_FALSE(c->keep_alive.has_value());
  EXPECT_FALSE(c->cache);
  EXPECT_EQ(c->ensemble, nullptr);
}

TEST(ServingConfig, ReadsEveryKnob) {
  auto c = parse_model_config(R"(
max_batch_size = 32
instances = 2
threads = 1
priority = 3
max_queue = 100
keep_alive = "90s"
pinned = true
warmup = false
[dynamic_batching]
max_queue_delay_us = 500
preferred_batch_sizes = [8, 16]
[cache]
memory_mb = 8
disk_mb = 64
[[input]]
name = "x"
dtype = "FP32"
dims = [-1, 4]
[[output]]
name = "y"
dtype = "float"
)",
                              "config.toml");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->max_batch_size, 32);
  EXPECT_EQ(c->instances, 2);
  EXPECT_EQ(c->threads, 1);
  EXPECT_EQ(c->priority, 3);
  EXPECT_EQ(c->max_queue, 100u);
  EXPECT_EQ(*c->keep_alive, 90s);
  EXPECT_TRUE(c->pinned);
  EXPECT_FALSE(c->warmup);
  EXPECT_EQ(c->max_queue_delay, 500us);
  EXPECT_EQ(c->preferred_batch_sizes, (std::vector<int64_t>{8, 16}));
  EXPECT_TRUE(c->cache);
  EXPECT_EQ(c->cache_memory_bytes, size_t{8} << 20);
  EXPECT_EQ(c->cache_disk_bytes, size_t{64} << 20);
  ASSERT_EQ(c->inputs.size(), 1u);
  EXPECT_EQ(c->inputs[0].dtype, DataType::kFloat32);
  EXPECT_EQ(*c->inputs[0].dims, (std::vector<int64_t>{-1, 4}));
  EXPECT_EQ(c->outputs[0].dtype, DataType::kFloat32);
}

TEST(ServingConfig, RefusesWhatItDoesNotUnderstand) {
  auto err = [](const char* text) {
    auto c = parse_model_config(text, "m/config.toml");
    EXPECT_FALSE(c.ok()) << text;
    return c.ok() ? std::string() : c.status().message();
  };
  EXPECT_NE(err("max_bach_size = 3").find("unknown key 'max_bach_size'"), std::string::npos);
  EXPECT_NE(err("max_batch_size = -1").find("max_batch_size"), std::string::npos);
  EXPECT_NE(err("instances = 0").find("instances"), std::string::npos);
  EXPECT_NE(err("keep_alive = \"5 parsecs\"").find("keep_alive"), std::string::npos);
  EXPECT_NE(err("max_batch_size = 4\n[dynamic_batching]\npreferred_batch_sizes = [8]").find("preferred"),
            std::string::npos);
  EXPECT_NE(err("[[input]]\nname = \"x\"\ndtype = \"complex\"").find("complex"), std::string::npos);
  EXPECT_NE(err("this is = not toml =").find("m/config.toml:1"), std::string::npos);
  EXPECT_NE(err("pinned = \"yes\"").find("pinned"), std::string::npos);
}

TEST(ServingConfig, ParsesDurations) {
  EXPECT_EQ(*parse_duration("250ms"), 250ms);
  EXPECT_EQ(*parse_duration("30s"), 30s);
  EXPECT_EQ(*parse_duration("5m"), 5min);
  EXPECT_EQ(*parse_duration("2h"), 2h);
  EXPECT_EQ(*parse_duration("1.5s"), 1500ms);
  EXPECT_EQ(*parse_duration("0"), 0ms);
  EXPECT_EQ(*parse_duration("forever"), KeepAlive::kForever);
  EXPECT_FALSE(parse_duration("-5s").ok());
  EXPECT_FALSE(parse_duration("soon").ok());
  EXPECT_FALSE(parse_duration("5 m").ok());
}

TEST(ServingModelName, AcceptsPlainNamesOnly) {
  for (const char* ok : {"resnet50", "mlp-v2", "a.b_c", "X9"}) EXPECT_TRUE(validate_model_name(ok).ok()) << ok;
  for (const char* bad :
       {"", ".", "..", "../etc", "a/b", "a\\b", ".hidden", "-flag", "name with space", "caf\xc3\xa9"}) {
    EXPECT_FALSE(validate_model_name(bad).ok()) << bad;
  }
  EXPECT_FALSE(validate_model_name(std::string("a\0b", 3)).ok());
  EXPECT_FALSE(validate_model_name(std::string(129, 'a')).ok());
}

TEST(ServingRepository, FindsVersionsAndConfig) {
  TempDir dir;
  write_file(dir.path() / "m" / "1" / "model.onnx", "x");
  write_file(dir.path() / "m" / "10" / "model.onnx", "x");
  write_file(dir.path() / "m" / "2" / "model.onnx", "x");
  write_file(dir.path() / "m" / "notaversion" / "model.onnx", "x");
  write_file(dir.path() / "m" / "3" / "other.onnx", "x");
  write_file(dir.path() / "m" / "config.toml", "max_batch_size = 4\n");
  auto repo = ModelRepository::open(dir.path());
  ASSERT_TRUE(repo.ok());
  auto m = (*repo)->find("m");
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  ASSERT_EQ(m->versions.size(), 3u);
  EXPECT_EQ(m->versions[0].version, 1);
  EXPECT_EQ(m->newest()->version, 10);
  ASSERT_TRUE(m->config.ok());
  EXPECT_EQ(m->config->max_batch_size, 4);
  EXPECT_EQ((*repo)->names(), std::vector<std::string>{"m"});
  EXPECT_EQ((*repo)->find("absent").status().code(), StatusCode::kNotFound);
}

TEST(ServingRepository, NeverLeavesItsFolder) {
  TempDir dir;
  const fs::path root = dir.path() / "models";
  write_file(dir.path() / "outside" / "1" / "model.onnx", "secret");
  write_file(root / "inside" / "1" / "model.onnx", "x");
  fs::create_directory_symlink(dir.path() / "outside", root / "escape");
  fs::create_directories(root / "partial");
  fs::create_directory_symlink(dir.path() / "outside" / "1", root / "partial" / "1");
  auto repo = ModelRepository::open(root);
  ASSERT_TRUE(repo.ok());
  for (const char* name : {"../outside", "..", "inside/../../outside", "/etc", "inside/1"}) {
    EXPECT_EQ((*repo)->find(name).status().code(), StatusCode::kInvalidArgument) << name;
  }
  EXPECT_EQ((*repo)->find("escape").status().code(), StatusCode::kInvalidArgument);
  auto partial = (*repo)->find("partial");
  ASSERT_TRUE(partial.ok());
  EXPECT_TRUE(partial->versions.empty()) << "a version folder linking outside must be ignored";
  const auto names = (*repo)->names();
  EXPECT_EQ(std::count(names.begin(), names.end(), "escape"), 0);
}

}  // namespace
}  // namespace deskml::serving
