// String kernels: StringNormalizer and TfIdfVectorizer.
#include <gtest/gtest.h>

#include "kernel_harness.hpp"

namespace deskml {
namespace {

using graph::AttributeValue;
using testing::make_node;
using testing::run_node;
using Strings = std::vector<std::string>;
using Ints = std::vector<int64_t>;

Tensor strs(Strings v, Shape s) { return Tensor::from_vector<std::string>(v, std::move(s)); }

template <typename T>
std::vector<T> vals(const Tensor& t) {
  auto s = t.values<T>();
  return {s.begin(), s.end()};
}

graph::Node normalizer(const std::string& action, int64_t case_sensitive, Strings stopwords) {
  std::map<std::string, AttributeValue> attrs = {{"case_change_action", AttributeValue(action)},
                                                 {"is_case_sensitive", AttributeValue(case_sensitive)}};
  if (!stopwords.empty()) attrs["stopwords"] = AttributeValue(stopwords);
  return make_node("StringNormalizer", 1, 1, 10, attrs);
}

Tensor run_one(const graph::Node& n, const Tensor& x) {
  auto r = run_node(n, {x});
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? (*r)[0] : Tensor();
}

TEST(StringNormalizer, StopwordsAndCase) {
  const Tensor x = strs({"monday", "tuesday", "wednesday", "thursday"}, {4});
  Tensor lower = run_one(normalizer("LOWER", 1, {"monday"}), x);
  EXPECT_EQ(lower.shape(), (Shape{3}));
  EXPECT_EQ(vals<std::string>(lower), (Strings{"tuesday", "wednesday", "thursday"}));
  Tensor upper = run_one(normalizer("UPPER", 1, {"monday"}), x);
  EXPECT_EQ(vals<std::string>(upper), (Strings{"TUESDAY", "WEDNESDAY", "THURSDAY"}));

  // Case-insensitive stopwords on a [1, C] input.
  const Tensor y = strs({"Monday", "tuesday", "MONDAY", "friday"}, {1, 4});
  Tensor insensitive = run_one(normalizer("UPPER", 0, {"monday"}), y);
  EXPECT_EQ(insensitive.shape(), (Shape{1, 2}));
  EXPECT_EQ(vals<std::string>(insensitive), (Strings{"TUESDAY", "FRIDAY"}));
  Tensor sensitive = run_one(normalizer("NONE", 1, {"monday"}), y);
  EXPECT_EQ(vals<std::string>(sensitive), (Strings{"Monday", "tuesday", "MONDAY", "friday"}));
}

TEST(StringNormalizer, EverythingDroppedLeavesOneEmptyString) {
  Tensor one_d = run_one(normalizer("UPPER", 1, {"monday"}), strs({"monday", "monday"}, {2}));
  EXPECT_EQ(one_d.shape(), (Shape{1}));
  EXPECT_EQ(vals<std::string>(one_d), (Strings{""}));
  Tensor two_d = run_one(normalizer("UPPER", 0, {"MONDAY"}), strs({"monday"}, {1, 1}));
  EXPECT_EQ(two_d.shape(), (Shape{1, 1}));
  EXPECT_EQ(vals<std::string>(two_d), (Strings{""}));
}

TEST(StringNormalizer, Utf8CaseMapping) {
  Tensor lower = run_one(normalizer("LOWER", 1, {}), strs({"ÄÖÜ Straße", "ΑΒΓ", "x\xff" "A"}, {3}));
  EXPECT_EQ(vals<std::string>(lower), (Strings{"äöü straße", "αβγ", "x\xff" "a"}));
  Tensor upper = run_one(normalizer("UPPER", 1, {}), strs({"ärger", "привет"}, {2}));
  EXPECT_EQ(vals<std::string>(upper), (Strings{"ÄRGER", "ПРИВЕТ"}));
  Tensor dropped = run_one(normalizer("NONE", 0, {"ÄRGER"}), strs({"ärger", "b"}, {2}));
  EXPECT_EQ(vals<std::string>(dropped), (Strings{"b"}));
}

TEST(StringNormalizer, RejectsBadInput) {
  EXPECT_FALSE(run_node(normalizer("UPPER", 1, {}), {strs({"a", "b"}, {2, 1})}).ok());
  EXPECT_FALSE(run_node(normalizer("UPPER", 1, {}), {strs({"a"}, {1, 1, 1})}).ok());
  EXPECT_FALSE(run_node(normalizer("SIDEWAYS", 1, {}), {strs({"a"}, {1})}).ok());
}

// --- TfIdfVectorizer -------------------------------------------------------------------

graph::Node tfidf(const std::string& mode, int64_t min_n, int64_t max_n, int64_t skip, Ints counts, Ints indexes,
                  std::optional<Ints> pool_ints, std::optional<Strings> pool_strings = {},
                  std::vector<float> weights = {}) {
  std::map<std::string, AttributeValue> attrs = {
      {"mode", AttributeValue(mode)},         {"min_gram_length", AttributeValue(min_n)},
      {"max_gram_length", AttributeValue(max_n)}, {"max_skip_count", AttributeValue(skip)},
      {"ngram_counts", AttributeValue(counts)},   {"ngram_indexes", AttributeValue(indexes)}};
  if (pool_ints) attrs["pool_int64s"] = AttributeValue(*pool_ints);
  if (pool_strings) attrs["pool_strings"] = AttributeValue(*pool_strings);
  if (!weights.empty()) attrs["weights"] = AttributeValue(weights);
  return make_node("TfIdfVectorizer", 1, 1, 9, attrs);
}

const Ints kPool = {2, 3, 5, 4, 5, 6, 7, 8, 6, 7};  // unigrams 2 3 5 4; bigrams (5,6) (7,8) (6,7)
const Ints kIdx = {0, 1, 2, 3, 4, 5, 6};
const std::vector<int32_t> kInput = {1, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8};

TEST(TfIdfVectorizer, OnnxExamples) {
  const Tensor x = Tensor::from_vector<int32_t>(kInput, {12});
  EXPECT_EQ(vals<float>(run_one(tfidf("TF", 2, 2, 0, {0, 4}, kIdx, kPool), x)),
            (std::vector<float>{0, 0, 0, 0, 1, 1, 1}));
  EXPECT_EQ(vals<float>(run_one(tfidf("TF", 2, 2, 5, {0, 4}, kIdx, kPool), x)),
            (std::vector<float>{0, 0, 0, 0, 1, 3, 1}));
  EXPECT_EQ(vals<float>(run_one(tfidf("TF", 1, 2, 5, {0, 4}, kIdx, kPool), x)),
            (std::vector<float>{0, 3, 1, 0, 1, 3, 1}));
  EXPECT_EQ(vals<float>(run_one(tfidf("TF", 2, 2, 0, {0, 0}, {0, 1, 2}, Ints{5, 6, 7, 8, 6, 7}), x)),
            (std::vector<float>{1, 1, 1}));
  // Batched int64 rows: n-grams never cross rows.
  const Tensor b = Tensor::from_vector<int64_t>({1, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8}, {2, 6});
  Tensor y = run_one(tfidf("TF", 1, 2, 5, {0, 4}, kIdx, kPool), b);
  EXPECT_EQ(y.shape(), (Shape{2, 7}));
  EXPECT_EQ(vals<float>(y), (std::vector<float>{0, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 1}));
}

TEST(TfIdfVectorizer, WeightingModesAndIndexMapping) {
  const Tensor x = Tensor::from_vector<int32_t>(kInput, {12});
  const std::vector<float> w = {1, 2, 3, 4, 5, 6, 7};
  EXPECT_EQ(vals<float>(run_one(tfidf("IDF", 1, 2, 5, {0, 4}, kIdx, kPool, {}, w), x)),
            (std::vector<float>{0, 2, 3, 0, 5, 6, 7}));
  EXPECT_EQ(vals<float>(run_one(tfidf("TFIDF", 1, 2, 5, {0, 4}, kIdx, kPool, {}, w), x)),
            (std::vector<float>{0, 6, 3, 0, 5, 18, 7}));
  EXPECT_EQ(vals<float>(run_one(tfidf("IDF", 1, 2, 5, {0, 4}, kIdx, kPool), x)),
            (std::vector<float>{0, 1, 1, 0, 1, 1, 1}));
  // ngram_indexes permutes (and may merge) output coordinates.
  EXPECT_EQ(vals<float>(run_one(tfidf("TF", 1, 2, 5, {0, 4}, {6, 5, 4, 3, 2, 1, 0}, kPool), x)),
            (std::vector<float>{1, 3, 1, 0, 1, 3, 0}));
  EXPECT_EQ(vals<float>(run_one(tfidf("TF", 1, 1, 0, {0, 4}, {0, 0, 0, 0, 1, 1, 1}, kPool), x)),
            (std::vector<float>{4, 0}));
}

TEST(TfIdfVectorizer, StringPool) {
  const Tensor x = strs({"a", "b", "a", "b", "c"}, {5});
  Tensor y = run_one(tfidf("TF", 1, 2, 0, {0, 2}, {0, 1, 2, 3}, {}, Strings{"a", "c", "a", "b", "b", "c"}), x);
  EXPECT_EQ(vals<float>(y), (std::vector<float>{2, 1, 2, 1}));
}

TEST(TfIdfVectorizer, RejectsInconsistentAttributesAndInputs) {
  const Tensor x = Tensor::from_vector<int32_t>(kInput, {12});
  EXPECT_FALSE(run_node(tfidf("BM25", 1, 2, 0, {0, 4}, kIdx, kPool), {x}).ok());
  EXPECT_FALSE(run_node(tfidf("TF", 2, 1, 0, {0, 4}, kIdx, kPool), {x}).ok());
  EXPECT_FALSE(run_node(tfidf("TF", 1, 2, 0, {0, 5}, kIdx, kPool), {x}).ok());        // 5 items != bigrams
  EXPECT_FALSE(run_node(tfidf("TF", 1, 2, 0, {0, 4}, {0, 1, 2}, kPool), {x}).ok());   // too few indexes
  EXPECT_FALSE(run_node(tfidf("TF", 1, 2, 0, {0, 4, 20}, kIdx, kPool), {x}).ok());    // offset past the pool
  EXPECT_FALSE(run_node(tfidf("TF", 1, 2, 0, {0, 4}, {0, 1, 2, 3, 4, 5, -1}, kPool), {x}).ok());
  EXPECT_FALSE(run_node(tfidf("TFIDF", 1, 2, 0, {0, 4}, kIdx, kPool, {}, {1, 2}), {x}).ok());  // short weights
  EXPECT_FALSE(run_node(tfidf("TF", 1, 2, 0, {0, 4}, kIdx, {}), {x}).ok());                   // no pool
  EXPECT_FALSE(run_node(tfidf("TF", 1, 1, 0, {0}, {0}, {}, Strings{"a"}), {x}).ok());        // ints vs string pool
  EXPECT_FALSE(run_node(tfidf("TF", 1, 2, 0, {0, 4}, kIdx, kPool),
                        {Tensor::from_vector<int32_t>(std::vector<int32_t>(8, 1), {2, 2, 2})})
                   .ok());
}

}  // namespace
}  // namespace deskml
