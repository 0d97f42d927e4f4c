// Bulk scoring in-process on SQLite, with the breast-cancer model trained by
// tests/models/make_tabular_model.py: results equal PyTorch's and the runtime's,
// tables and CSV files, failures that leave a resumable checkpoint, resume,
// --fresh, and the outputs deskml score refuses to touch.
#include <gtest/gtest.h>

#include "features/feature_source.hpp"
#include "features_test_util.hpp"
#include "scoring/scorer.hpp"
#include "serving/model_repository.hpp"
#include "serving/runtime.hpp"

namespace deskml::scoring {
namespace {

using features::testing::close;
using features::testing::Csv;
using features::testing::expected_outputs;
using features::testing::Sqlite;
using features::testing::tabular_dir;
using features::testing::tabular_models;
using features::testing::TempDir;

constexpr const char* kModel = "breast_cancer";

class ScoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DESKML_REQUIRE_TABULAR();
    db_path_ = dir_ / "features.db";
    Sqlite db(db_path_);
    db.load_csv("tumours", tabular_dir() / "breast_cancer.csv");
    serving::RuntimeOptions ro;
    ro.repository = tabular_models();
    ro.poll_interval = std::chrono::milliseconds(0);
    ro.threads = 1;
    auto rt = serving::Runtime::create(ro);
    ASSERT_TRUE(rt.ok()) << rt.status().to_string();
    runtime_ = std::move(rt).value();
    auto src = features::FeatureSource::open("sqlite:" + db_path_.string());
    ASSERT_TRUE(src.ok()) << src.status().to_string();
    source_ = *src;
  }

  ScoreOptions options(const std::string& into, size_t batch = 100) {
    ScoreOptions o;
    o.model = kModel;
    o.query = "SELECT * FROM tumours";
    o.key = "id";
    o.into = into;
    o.batch = batch;
    auto repo = serving::ModelRepository::open(tabular_models());
    auto entry = (*repo)->find(kModel);
    o.mapping = *mapping_from_config(*entry->config);
    return o;
  }

  ScoreReport run(const ScoreOptions& o) { return score(*runtime_, *source_, o); }

  // key -> values of the output table, in column order.
  std::map<std::string, std::vector<double>> table(const std::string& name) {
    Sqlite db(db_path_);
    std::map<std::string, std::vector<double>> out;
    for (const auto& row : db.query("SELECT * FROM " + name)) {
      auto& v = out[row[0]];
      for (size_t i = 1; i < row.size(); ++i) v.push_back(std::stod(row[i]));
    }
    return out;
  }

  void expect_matches_pytorch(const std::map<std::string, std::vector<double>>& got) {
    const auto want = expected_outputs();
    ASSERT_EQ(got.size(), want.size());
    int bad = 0;
    for (const auto& [id, values] : want) {
      auto it = got.find(std::to_string(id));
      ASSERT_NE(it, got.end()) << "no result for id " << id;
      ASSERT_EQ(it->second.size(), 3u);
      for (size_t i = 0; i < 3; ++i) {
        if (!close(it->second[i], values[i], 1e-4, 1e-5) && ++bad < 5) {
          ADD_FAILURE() << "id " << id << " output " << i << ": deskml " << it->second[i] << ", PyTorch " << values[i];
        }
      }
    }
    EXPECT_EQ(bad, 0);
  }

  TempDir dir_;
  std::filesystem::path db_path_;
  std::unique_ptr<serving::Runtime> runtime_;
  std::shared_ptr<features::FeatureSource> source_;
};

TEST_F(ScoreTest, TableMatchesPyTorchAndTheRuntime) {
  const ScoreReport rep = run(options("preds"));
  ASSERT_TRUE(rep.status.ok()) << rep.status.to_string();
  EXPECT_EQ(rep.rows_written, 569);
  EXPECT_FALSE(rep.resumed);
  EXPECT_EQ(std::get<int64_t>(*rep.last_key), 569);
  EXPECT_NE(rep.mapping.find("features <- float[N,30] from 30 columns"), std::string::npos) << rep.mapping;
  const auto got = table("preds");
  expect_matches_pytorch(got);

  // The same rows run through the runtime directly, in one request.
  const Csv csv = Csv::read(tabular_dir() / "breast_cancer.csv");
  Tensor x(DataType::kFloat32, {569, 30});
  for (size_t r = 0; r < 569; ++r) {
    for (size_t c = 0; c < 30; ++c) x.data<float>()[r * 30 + c] = static_cast<float>(std::stod(csv.rows[r][c + 1]));
  }
  auto direct = runtime_->infer_sync(kModel, {{"features", x}});
  ASSERT_TRUE(direct.ok()) << direct.status().to_string();
  const Tensor& logits = direct->outputs[0].second;
  const Tensor& prob = direct->outputs[1].second;
  for (int64_t r = 0; r < 569; ++r) {
    const auto& v = got.at(std::to_string(r + 1));
    ASSERT_TRUE(close(v[0], logits.data<float>()[r * 2], 1e-6, 1e-7)) << r;
    ASSERT_TRUE(close(v[1], logits.data<float>()[r * 2 + 1], 1e-6, 1e-7)) << r;
    ASSERT_TRUE(close(v[2], prob.data<float>()[r], 1e-6, 1e-12)) << r;
  }

  // The checkpoint row says where the job stands.
  Sqlite db(db_path_);
  const auto ckpt =
      db.query("SELECT last_key, rows_done, layout FROM deskml_score_checkpoints WHERE output_table = 'preds'");
  ASSERT_EQ(ckpt.size(), 1u);
  EXPECT_EQ(ckpt[0][0], "569");
  EXPECT_EQ(ckpt[0][1], "569");
  EXPECT_EQ(ckpt[0][2], "key:integer logits_0:float logits_1:float probability_0:float");
}

TEST_F(ScoreTest, CsvHoldsTheSameRows) {
  const auto path = dir_ / "preds.csv";
  const ScoreReport rep = run(options(path.string(), 64));
  ASSERT_TRUE(rep.status.ok()) << rep.status.to_string();
  const Csv csv = Csv::read(path);
  EXPECT_EQ(csv.header, (std::vector<std::string>{"key", "logits_0", "logits_1", "probability_0"}));
  ASSERT_EQ(csv.rows.size(), 569u);
  std::map<std::string, std::vector<double>> got;
  for (size_t i = 0; i < csv.rows.size(); ++i) {
    EXPECT_EQ(csv.rows[i][0], std::to_string(i + 1));  // in key order
    got[csv.rows[i][0]] = {std::stod(csv.rows[i][1]), std::stod(csv.rows[i][2]), std::stod(csv.rows[i][3])};
  }
  expect_matches_pytorch(got);
  const std::string ckpt = features::testing::read_file(path.string() + ".checkpoint");
  EXPECT_NE(ckpt.find("\"rows_done\": 569"), std::string::npos) << ckpt;
}

TEST_F(ScoreTest, FreshStartsACsvOverEvenWhenItsFileWentMissing) {
  const auto path = dir_ / "preds.csv";
  ASSERT_TRUE(run(options(path.string(), 64)).status.ok());
  const std::string first = features::testing::read_file(path);
  std::filesystem::remove(path);
  const ScoreReport lost = run(options(path.string(), 64));
  ASSERT_FALSE(lost.status.ok());
  EXPECT_NE(lost.status.message().find("which is missing; use --fresh"), std::string::npos) << lost.status.message();

  ScoreOptions fresh = options(path.string(), 64);
  fresh.fresh = true;
  const ScoreReport again = run(fresh);
  ASSERT_TRUE(again.status.ok()) << again.status.to_string();
  EXPECT_FALSE(again.resumed);
  EXPECT_EQ(again.rows_written, 569);
  EXPECT_EQ(features::testing::read_file(path), first);
  // A fresh run over a complete CSV rewrites it rather than appending.
  ASSERT_TRUE(run(fresh).status.ok());
  EXPECT_EQ(features::testing::read_file(path), first);
  const ScoreReport resumed = run(options(path.string(), 64));
  ASSERT_TRUE(resumed.status.ok());
  EXPECT_TRUE(resumed.resumed);
  EXPECT_EQ(resumed.rows_written, 0);
}

TEST_F(ScoreTest, ANullStopsTheJobAndTheRerunContinues) {
  {
    Sqlite db(db_path_);
    db.exec("UPDATE tumours SET mean_area = NULL WHERE id = 250");
  }
  const ScoreReport failed = run(options("preds"));
  ASSERT_FALSE(failed.status.ok());
  EXPECT_EQ(failed.status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(failed.status.message().find("row with key 250: column 'mean_area' is NULL"), std::string::npos)
      << failed.status.message();
  // The pages before the bad one are written and checkpointed.
  EXPECT_EQ(failed.rows_written, 200);
  EXPECT_EQ(std::get<int64_t>(*failed.last_key), 200);
  EXPECT_EQ(table("preds").size(), 200u);

  {
    Sqlite db(db_path_);
    const Csv csv = Csv::read(tabular_dir() / "breast_cancer.csv");
    db.exec("UPDATE tumours SET mean_area = " + csv.rows[249][csv.column("mean_area")] + " WHERE id = 250");
  }
  const ScoreReport resumed = run(options("preds"));
  ASSERT_TRUE(resumed.status.ok()) << resumed.status.to_string();
  EXPECT_TRUE(resumed.resumed);
  EXPECT_EQ(resumed.rows_before, 200);
  EXPECT_EQ(resumed.rows_written, 369);
  expect_matches_pytorch(table("preds"));
}

TEST_F(ScoreTest, FillValuesAndWrongTypes) {
  {
    Sqlite db(db_path_);
    db.exec("UPDATE tumours SET mean_texture = NULL WHERE id = 3");
    db.exec("UPDATE tumours SET worst_area = 'lots' WHERE id = 7");
  }
  ScoreOptions o = options("preds");
  ASSERT_TRUE(o.mapping.add_fill_spec("mean_texture=19.3").ok());
  const ScoreReport rep = run(o);
  ASSERT_FALSE(rep.status.ok());
  EXPECT_NE(rep.status.message().find("row with key 7: column 'worst_area' holds text 'lots', which does not parse"),
            std::string::npos)
      << rep.status.message();
}

TEST_F(ScoreTest, RerunIsIncrementalAndFreshStartsOver) {
  ASSERT_TRUE(run(options("preds")).status.ok());
  const ScoreReport again = run(options("preds"));
  ASSERT_TRUE(again.status.ok());
  EXPECT_TRUE(again.resumed);
  EXPECT_EQ(again.rows_written, 0);
  EXPECT_EQ(again.rows_before, 569);

  {
    Sqlite db(db_path_);
    db.exec("INSERT INTO tumours SELECT id + 1000, " + [] {
      std::string cols;
      const Csv csv = Csv::read(tabular_dir() / "breast_cancer.csv");
      for (size_t i = 1; i < csv.header.size(); ++i) cols += (i > 1 ? ", " : "") + csv.header[i];
      return cols;
    }() + " FROM tumours WHERE id <= 10");
  }
  const ScoreReport more = run(options("preds"));
  ASSERT_TRUE(more.status.ok());
  EXPECT_EQ(more.rows_written, 10);
  EXPECT_EQ(table("preds").size(), 579u);

  ScoreOptions fresh = options("preds");
  fresh.fresh = true;
  const ScoreReport again_fresh = run(fresh);
  ASSERT_TRUE(again_fresh.status.ok());
  EXPECT_FALSE(again_fresh.resumed);
  EXPECT_EQ(again_fresh.rows_written, 579);
  EXPECT_EQ(table("preds").size(), 579u);
}

TEST_F(ScoreTest, NeverTouchesOutputsItDidNotWrite) {
  {
    Sqlite db(db_path_);
    db.exec("CREATE TABLE mine (x INTEGER)");
  }
  for (bool fresh : {false, true}) {
    ScoreOptions o = options("mine");
    o.fresh = fresh;
    const ScoreReport rep = run(o);
    ASSERT_FALSE(rep.status.ok());
    EXPECT_NE(rep.status.message().find("deskml score did not create it"), std::string::npos) << rep.status.message();
  }
  std::ofstream(dir_ / "notes.csv") << "precious\n";
  ScoreOptions csv = options((dir_ / "notes.csv").string());
  csv.fresh = true;
  const ScoreReport rep = run(csv);
  ASSERT_FALSE(rep.status.ok());
  EXPECT_EQ(features::testing::read_file(dir_ / "notes.csv"), "precious\n");
}

TEST_F(ScoreTest, AnotherJobCannotResumeAnOutput) {
  ASSERT_TRUE(run(options("preds")).status.ok());
  ScoreOptions other = options("preds");
  other.query = "SELECT * FROM tumours WHERE target = 1";
  const ScoreReport rep = run(other);
  ASSERT_FALSE(rep.status.ok());
  EXPECT_NE(rep.status.message().find("holds the results of a different job (query was"), std::string::npos)
      << rep.status.message();
  EXPECT_NE(rep.status.message().find("--fresh"), std::string::npos);
}

TEST_F(ScoreTest, KeysMustBeUnique) {
  {
    Sqlite db(db_path_);
    db.exec("CREATE TABLE dup AS SELECT * FROM tumours");
    db.exec("INSERT INTO dup SELECT * FROM tumours WHERE id = 42");
  }
  ScoreOptions o = options("preds");
  o.query = "SELECT * FROM dup";
  const ScoreReport rep = run(o);
  ASSERT_FALSE(rep.status.ok());
  EXPECT_NE(rep.status.message().find("is not unique: key 42 comes after key 42"), std::string::npos)
      << rep.status.message();
}

TEST_F(ScoreTest, TextKeys) {
  ScoreOptions o = options("preds");
  o.query = "SELECT printf('T%04d', id) AS tid, * FROM tumours";
  o.key = "tid";
  const ScoreReport rep = run(o);
  ASSERT_TRUE(rep.status.ok()) << rep.status.to_string();
  EXPECT_EQ(rep.rows_written, 569);
  EXPECT_EQ(std::get<std::string>(*rep.last_key), "T0569");
  const auto got = table("preds");
  EXPECT_EQ(got.size(), 569u);
  EXPECT_EQ(got.count("T0001"), 1u);
  Sqlite db(db_path_);
  EXPECT_EQ(db.scalar("SELECT typeof(key) FROM preds LIMIT 1"), "text");
}

TEST_F(ScoreTest, BigPagesRunInChunksOfTheModelsBatchLimit) {
  // max_batch_size is 1024: a page of 2500 rows runs as three requests.
  const Csv synthetic = Csv::read(tabular_dir() / "synthetic_20000.csv");
  ASSERT_EQ(synthetic.rows.size(), 20000u);
  {
    Sqlite db(db_path_);
    db.load_csv("many", tabular_dir() / "synthetic_20000.csv");
  }
  ScoreOptions big = options("big", 2500), small = options("small", 1000);
  big.query = small.query = "SELECT * FROM many WHERE id <= 6000";
  ASSERT_TRUE(run(big).status.ok());
  ASSERT_TRUE(run(small).status.ok());
  const auto a = table("big"), b = table("small");
  ASSERT_EQ(a.size(), 6000u);
  ASSERT_EQ(b.size(), 6000u);
  for (const auto& [k, v] : a) {
    for (size_t i = 0; i < v.size(); ++i) ASSERT_TRUE(close(v[i], b.at(k)[i], 1e-6, 1e-7)) << k;
  }
}

}  // namespace
}  // namespace deskml::scoring
