// Online feature lookups on SQLite: a request names a source and keys instead of
// tensors, through the C++ API (features::FeatureService) and over HTTP (deskml
// serve). Results match PyTorch's, in the order of the keys; errors name what is
// missing; deadlines and cancellation hold; p50 latency is reported.
#include "features/feature_service.hpp"

#include <gtest/gtest.h>

#include "serve_client.hpp"
#include "serving/runtime.hpp"

namespace deskml::features::testing {
namespace {

class FeatureServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DESKML_REQUIRE_TABULAR();
    repo_ = dir_ / "models";
    // The database lives in the model's folder; the source's relative path resolves there.
    write_repository_with_source(repo_, "clinic", "sqlite:clinic.db", "SELECT * FROM tumours");
    Sqlite db(repo_ / "breast_cancer" / "clinic.db");
    db.load_csv("tumours", tabular_dir() / "breast_cancer.csv");
    serving::RuntimeOptions ro;
    ro.repository = repo_;
    ro.threads = 1;
    ro.poll_interval = std::chrono::milliseconds(0);
    runtime_ = std::move(serving::Runtime::create(ro)).value();
    FeatureServiceOptions fo;
    fo.repository = repo_;
    service_ = std::move(FeatureService::create(*runtime_, fo)).value();
  }

  TempDir dir_;
  fs::path repo_;
  std::unique_ptr<serving::Runtime> runtime_;
  std::unique_ptr<FeatureService> service_;
};

void expect_rows(const serving::InferResponse& r, const std::vector<int64_t>& ids) {
  const auto want = expected_outputs();
  ASSERT_EQ(r.outputs.size(), 2u);
  const Tensor& logits = r.outputs[0].second;
  const Tensor& prob = r.outputs[1].second;
  ASSERT_EQ(logits.shape(), (Shape{static_cast<int64_t>(ids.size()), 2}));
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto& w = want.at(ids[i]);
    EXPECT_TRUE(close(logits.data<float>()[i * 2], w[0], 1e-4, 1e-5)) << "key " << ids[i];
    EXPECT_TRUE(close(logits.data<float>()[i * 2 + 1], w[1], 1e-4, 1e-5)) << "key " << ids[i];
    EXPECT_TRUE(close(prob.data<float>()[i], w[2], 1e-4, 1e-5)) << "key " << ids[i];
  }
}

TEST_F(FeatureServiceTest, RowsComeInTheOrderOfTheKeys) {
  auto r = service_
               ->infer("breast_cancer", "clinic",
                       {Key(int64_t{3}), Key(int64_t{1}), Key(std::string("569")), Key(int64_t{3})})
               .get();
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  expect_rows(*r, {3, 1, 569, 3});
}

TEST_F(FeatureServiceTest, ErrorsNameWhatIsMissing) {
  auto missing = service_->infer("breast_cancer", "clinic", {Key(int64_t{2}), Key(int64_t{9999})}).get();
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("source 'clinic' has no row for key 9999"), std::string::npos)
      << missing.status().message();

  auto source = service_->infer("breast_cancer", "crm", {Key(int64_t{2})}).get();
  ASSERT_FALSE(source.ok());
  EXPECT_NE(source.status().message().find("declares no feature source 'crm' (its sources: clinic)"), std::string::npos)
      << source.status().message();

  auto model = service_->infer("nope", "clinic", {Key(int64_t{2})}).get();
  EXPECT_EQ(model.status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(service_->infer("breast_cancer", "clinic", {}).get().ok());
}

TEST_F(FeatureServiceTest, DeadlinesAndCancellation) {
  // A query that takes seconds: every row joined with a long recursive sequence.
  auto slow_source = FeatureSource::open("sqlite:" + (repo_ / "breast_cancer" / "clinic.db").string());
  ASSERT_TRUE(slow_source.ok());
  auto slow = *KeyedQuery::make(
      "SELECT t.* FROM tumours t, (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000) "
      "SELECT max(i) AS m FROM n) s",
      "id");
  MappingConfig mapping;
  ASSERT_TRUE(mapping
                  .add_map_spec("features=mean_radius,mean_texture,mean_perimeter,mean_area,mean_smoothness,"
                                "mean_compactness,mean_concavity,mean_concave_points,mean_symmetry,"
                                "mean_fractal_dimension,radius_error,texture_error,perimeter_error,area_error,"
                                "smoothness_error,compactness_error,concavity_error,concave_points_error,"
                                "symmetry_error,fractal_dimension_error,worst_radius,worst_texture,worst_perimeter,"
                                "worst_area,worst_smoothness,worst_compactness,worst_concavity,"
                                "worst_concave_points,worst_symmetry,worst_fractal_dimension")
                  .ok());
  serving::InferOptions o;
  o.deadline = serving::Clock::now() + std::chrono::milliseconds(100);
  std::promise<Result<serving::InferResponse>> p;
  const auto t0 = std::chrono::steady_clock::now();
  service_->infer_async("breast_cancer", *slow_source, slow, mapping, {Key(int64_t{1})}, o,
                        [&](Result<serving::InferResponse> r) { p.set_value(std::move(r)); });
  auto r = p.get_future().get();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded) << r.status().to_string();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1500));

  serving::InferOptions cancelled;
  cancelled.cancel = std::make_shared<serving::CancelToken>();
  cancelled.cancel->cancel();
  auto c = service_->infer("breast_cancer", "clinic", {Key(int64_t{1})}, cancelled).get();
  EXPECT_EQ(c.status().code(), StatusCode::kCancelled);
}

TEST_F(FeatureServiceTest, LatencyThroughTheCppApi) {
  ASSERT_TRUE(service_->infer("breast_cancer", "clinic", {Key(int64_t{1})}).get().ok());  // loads the model
  ASSERT_NO_FATAL_FAILURE(time_cpp_lookups(*service_, "SQLite"));
}

TEST_F(FeatureServiceTest, OverHttp) {
  ServeProcess serve(repo_, dir_.path());
  ASSERT_GT(serve.port, 0);
  HttpClient http(serve.port);
  const auto ok = http.post("/v2/models/breast_cancer/infer",
                            R"({"id": "q1", "features": {"source": "clinic", "keys": [10, "20", 30]}})", serve.token);
  ASSERT_EQ(ok.status, 200) << ok.body;
  const auto j = ok.json();
  EXPECT_EQ(j["id"], "q1");
  ASSERT_EQ(j["outputs"].size(), 2u);
  EXPECT_EQ(j["outputs"][0]["name"], "logits");
  EXPECT_EQ(j["outputs"][0]["shape"], nlohmann::json::array({3, 2}));
  const auto want = expected_outputs();
  EXPECT_TRUE(close(j["outputs"][0]["data"][2].get<double>(), want.at(20)[0], 1e-4, 1e-5));
  EXPECT_TRUE(close(j["outputs"][1]["data"][2].get<double>(), want.at(30)[2], 1e-4, 1e-5));

  const auto missing = http.post("/v2/models/breast_cancer/infer",
                                 R"({"features": {"source": "clinic", "keys": [12345]}})", serve.token);
  EXPECT_EQ(missing.status, 404) << missing.body;
  EXPECT_NE(missing.body.find("no row for key 12345"), std::string::npos) << missing.body;
  const auto both = http.post("/v2/models/breast_cancer/infer",
                              R"({"inputs": [{"name": "features", "shape": [1, 1], "datatype": "FP32", "data": [1]}],
                                  "features": {"source": "clinic", "keys": [1]}})",
                              serve.token);
  EXPECT_EQ(both.status, 400) << both.body;
  const auto bad_key =
      http.post("/v2/models/breast_cancer/infer", R"({"features": {"source": "clinic", "keys": [1.5]}})", serve.token);
  EXPECT_EQ(bad_key.status, 400) << bad_key.body;

  ASSERT_NO_FATAL_FAILURE(time_http_lookups(http, serve.token, "SQLite"));
}

}  // namespace
}  // namespace deskml::features::testing
