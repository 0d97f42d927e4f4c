// Columns -> model inputs: which columns feed which input, shapes, conversions,
// NULL fill values and the errors a user sees.
#include "features/mapping.hpp"

#include <gtest/gtest.h>

namespace deskml::features {
namespace {

graph::ValueInfo input(const std::string& name, DataType dtype, std::vector<int64_t> dims) {
  graph::ValueInfo vi;
  vi.name = name;
  vi.type.dtype = dtype;
  std::vector<graph::Dim> shape;
  for (int64_t d : dims) shape.push_back(d < 0 ? graph::Dim::named("N") : graph::Dim::of(d));
  vi.type.shape = shape;
  return vi;
}

// id, a, b, c with three rows of reals (row r: a = r + 0.5, b = 10r, c = -r).
RowBatch three_rows() {
  RowBatch b;
  b.columns = {"id", "a", "b", "c"};
  for (int r = 0; r < 3; ++r) {
    b.cells.push_back(Cell::integer(100 + r));
    b.cells.push_back(Cell::real(r + 0.5));
    b.cells.push_back(Cell::integer(10 * r));
    b.cells.push_back(Cell::real(-r));
  }
  return b;
}

TEST(FeatureMapping, OneInputTakesEveryOtherColumnInQueryOrder) {
  RowBatch b = three_rows();
  auto m = FeatureMapping::create({input("x", DataType::kFloat32, {-1, 3})}, b.columns, "id", {});
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  ASSERT_EQ(m->bindings().size(), 1u);
  EXPECT_EQ(m->bindings()[0].columns, (std::vector<size_t>{1, 2, 3}));
  auto t = m->tensors(b, 0, 3);
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  const Tensor& x = (*t)[0].second;
  EXPECT_EQ(x.shape(), (Shape{3, 3}));
  const std::vector<float> want = {0.5f, 0, 0, 1.5f, 10, -1, 2.5f, 20, -2};
  EXPECT_EQ(std::vector<float>(x.data<float>(), x.data<float>() + 9), want);
  EXPECT_NE(m->describe().find("x <- float[N,3] from 3 columns (a, b, c)"), std::string::npos) << m->describe();
}

TEST(FeatureMapping, RowRangesAndDynamicWidth) {
  RowBatch b = three_rows();
  auto m = FeatureMapping::create({input("x", DataType::kFloat64, {-1, -1})}, b.columns, "ID", {});
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  auto t = m->tensors(b, 1, 3);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ((*t)[0].second.shape(), (Shape{2, 3}));
  EXPECT_DOUBLE_EQ((*t)[0].second.data<double>()[0], 1.5);
}

TEST(FeatureMapping, InputsByNameThenTheRest) {
  RowBatch b = three_rows();
  // "b" feeds the int64 input b ([N]); "c" the [N, 1] input; the remaining "a" feeds "rest".
  auto m = FeatureMapping::create({input("rest", DataType::kFloat32, {-1, 1}), input("b", DataType::kInt64, {-1}),
                                   input("C", DataType::kFloat32, {-1, 1})},
                                  b.columns, "id", {});
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  auto t = m->tensors(b, 0, 3);
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ((*t)[0].first, "rest");
  EXPECT_EQ((*t)[0].second.shape(), (Shape{3, 1}));
  EXPECT_FLOAT_EQ((*t)[0].second.data<float>()[2], 2.5f);
  EXPECT_EQ((*t)[1].second.shape(), (Shape{3}));
  EXPECT_EQ((*t)[1].second.data<int64_t>()[2], 20);
  EXPECT_EQ((*t)[2].second.shape(), (Shape{3, 1}));
  EXPECT_FLOAT_EQ((*t)[2].second.data<float>()[1], -1.f);
}

TEST(FeatureMapping, ExplicitMappingChoosesAndOrdersColumns) {
  RowBatch b = three_rows();
  MappingConfig cfg;
  ASSERT_TRUE(cfg.add_map_spec("x=c, a").ok());
  auto m = FeatureMapping::create({input("x", DataType::kFloat32, {-1, 2})}, b.columns, "id", cfg);
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  auto t = m->tensors(b, 0, 1);
  ASSERT_TRUE(t.ok());
  EXPECT_FLOAT_EQ((*t)[0].second.data<float>()[0], 0.f);   // c
  EXPECT_FLOAT_EQ((*t)[0].second.data<float>()[1], 0.5f);  // a

  MappingConfig star;
  ASSERT_TRUE(star.add_map_spec("x=*").ok());
  auto all = FeatureMapping::create({input("x", DataType::kFloat32, {-1, 3})}, b.columns, "id", star);
  ASSERT_TRUE(all.ok()) << all.status().to_string();
}

TEST(FeatureMapping, ErrorsSayWhatToDo) {
  RowBatch b = three_rows();
  auto wide = FeatureMapping::create({input("x", DataType::kFloat32, {-1, 30})}, b.columns, "id", {});
  ASSERT_FALSE(wide.ok());
  EXPECT_NE(wide.status().message().find("input 'x' is float[N,30], but 3 columns feed it (a, b, c)"),
            std::string::npos)
      << wide.status().message();

  auto two = FeatureMapping::create({input("p", DataType::kFloat32, {-1, 1}), input("q", DataType::kFloat32, {-1, 1})},
                                    b.columns, "id", {});
  ASSERT_FALSE(two.ok());
  EXPECT_NE(two.status().message().find("--map"), std::string::npos) << two.status().message();

  auto no_key = FeatureMapping::create({input("x", DataType::kFloat32, {-1, 3})}, b.columns, "key", {});
  ASSERT_FALSE(no_key.ok());
  EXPECT_NE(no_key.status().message().find("no key column 'key'"), std::string::npos);

  auto fixed = FeatureMapping::create({input("x", DataType::kFloat32, {1, 3})}, b.columns, "id", {});
  ASSERT_FALSE(fixed.ok());
  EXPECT_NE(fixed.status().message().find("fixed first dimension"), std::string::npos);

  MappingConfig bad;
  ASSERT_TRUE(bad.add_map_spec("y=a").ok());
  auto unknown = FeatureMapping::create({input("x", DataType::kFloat32, {-1, 3})}, b.columns, "id", bad);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("names input 'y'"), std::string::npos);

  MappingConfig missing;
  ASSERT_TRUE(missing.add_map_spec("x=a,zz").ok());
  auto col = FeatureMapping::create({input("x", DataType::kFloat32, {-1, 2})}, b.columns, "id", missing);
  ASSERT_FALSE(col.ok());
  EXPECT_NE(col.status().message().find("names column 'zz'"), std::string::npos);
}

TEST(FeatureMapping, NullIsAnErrorNamingKeyColumnAndInput) {
  RowBatch b = three_rows();
  b.cells[1 * 4 + 2] = Cell::null();  // row id 101, column b
  auto m = FeatureMapping::create({input("x", DataType::kFloat32, {-1, 3})}, b.columns, "id", {});
  ASSERT_TRUE(m.ok());
  auto t = m->tensors(b, 0, 3);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  const std::string& msg = t.status().message();
  EXPECT_NE(msg.find("row with key 101: column 'b' is NULL"), std::string::npos) << msg;
  EXPECT_NE(msg.find("input 'x'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--fill"), std::string::npos) << msg;
  // Rows before the NULL convert fine.
  EXPECT_TRUE(m->tensors(b, 0, 1).ok());
}

TEST(FeatureMapping, FillValuesReplaceNulls) {
  RowBatch b = three_rows();
  b.cells[1 * 4 + 2] = Cell::null();  // b
  b.cells[2 * 4 + 1] = Cell::null();  // a
  MappingConfig cfg;
  ASSERT_TRUE(cfg.add_fill_spec("-1").ok());
  ASSERT_TRUE(cfg.add_fill_spec("A=7.5").ok());  // column names match without regard to case
  auto m = FeatureMapping::create({input("x", DataType::kFloat32, {-1, 3})}, b.columns, "id", cfg);
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  auto t = m->tensors(b, 0, 3);
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  const float* x = (*t)[0].second.data<float>();
  EXPECT_FLOAT_EQ(x[1 * 3 + 1], -1.f);
  EXPECT_FLOAT_EQ(x[2 * 3 + 0], 7.5f);

  MappingConfig text_fill;
  ASSERT_TRUE(text_fill.add_fill_spec("unknown").ok());
  auto wrong = FeatureMapping::create({input("x", DataType::kFloat32, {-1, 3})}, b.columns, "id", text_fill);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("fill value of column 'a' is text"), std::string::npos)
      << wrong.status().message();
}

TEST(FeatureMapping, TextFeedsStringInputsAndNothingElse) {
  RowBatch b;
  b.columns = {"k", "city", "n"};
  b.add_text("k1");
  b.add_text("Lyon");
  b.cells.push_back(Cell::integer(3));
  b.add_text("k2");
  b.cells.push_back(Cell::null());
  b.add_text("4.0");  // text that parses as a number feeds numeric inputs
  MappingConfig cfg;
  ASSERT_TRUE(cfg.add_fill_spec("city=?").ok());
  auto m = FeatureMapping::create({input("city", DataType::kString, {-1}), input("n", DataType::kInt32, {-1, 1})},
                                  b.columns, "k", cfg);
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  auto t = m->tensors(b, 0, 2);
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ((*t)[0].second.data<std::string>()[0], "Lyon");
  EXPECT_EQ((*t)[0].second.data<std::string>()[1], "?");
  EXPECT_EQ((*t)[1].second.data<int32_t>()[1], 4);

  auto numeric_to_string = FeatureMapping::create(
      {input("n", DataType::kString, {-1}), input("city", DataType::kString, {-1})}, b.columns, "k", {});
  ASSERT_TRUE(numeric_to_string.ok());
  auto bad = numeric_to_string->tensors(b, 0, 1);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("CAST it to text"), std::string::npos) << bad.status().message();
}

TEST(FeatureMapping, ConversionsAreChecked) {
  RowBatch b;
  b.columns = {"id", "v"};
  const auto one = [&](Cell c) {
    b.cells = {Cell::integer(1), c};
    b.texts.clear();
  };
  const auto convert = [&](DataType dt) {
    auto m = FeatureMapping::create({input("v", dt, {-1})}, b.columns, "id", {});
    EXPECT_TRUE(m.ok()) << m.status().to_string();
    return m->tensors(b, 0, 1);
  };
  one(Cell::real(1.5));
  EXPECT_NE(convert(DataType::kInt64).status().message().find("is not an integer"), std::string::npos);
  one(Cell::real(3.0));
  EXPECT_EQ(convert(DataType::kInt64)->at(0).second.data<int64_t>()[0], 3);
  one(Cell::integer(300));
  EXPECT_NE(convert(DataType::kInt8).status().message().find("out of the input type's range"), std::string::npos);
  one(Cell::integer(-1));
  EXPECT_FALSE(convert(DataType::kUInt8).ok());
  one(Cell::integer(2));
  EXPECT_NE(convert(DataType::kBool).status().message().find("neither 0 nor 1"), std::string::npos);
  one(Cell::boolean(true));
  EXPECT_TRUE(convert(DataType::kBool)->at(0).second.data<bool>()[0]);
  EXPECT_FLOAT_EQ(convert(DataType::kFloat32)->at(0).second.data<float>()[0], 1.f);
  one(Cell::integer(int64_t{1} << 62));
  EXPECT_EQ(convert(DataType::kInt64)->at(0).second.data<int64_t>()[0], int64_t{1} << 62);  // exact, not via double
  b.cells = {Cell::integer(1)};
  b.add_text("abc");
  EXPECT_NE(convert(DataType::kFloat32).status().message().find("does not parse as a number"), std::string::npos);
  b.cells = {Cell::integer(1)};
  b.texts.clear();
  b.add_text("f");
  EXPECT_FALSE(convert(DataType::kBool)->at(0).second.data<bool>()[0]);
}

TEST(MappingConfig, FromToml) {
  const auto table = toml::parse(R"(
fill = 0.0
[inputs]
features = ["a", "b"]
ids = "id"
[fill_values]
b = -1
flag = true
name = "none"
)");
  auto cfg = MappingConfig::from_toml(table, "config.toml");
  ASSERT_TRUE(cfg.ok()) << cfg.status().to_string();
  EXPECT_EQ(cfg->inputs.at("features"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(cfg->inputs.at("ids"), (std::vector<std::string>{"id"}));
  EXPECT_EQ(std::get<double>(*cfg->fill), 0.0);
  EXPECT_EQ(std::get<double>(cfg->column_fill.at("b")), -1.0);
  EXPECT_EQ(std::get<double>(cfg->column_fill.at("flag")), 1.0);
  EXPECT_EQ(std::get<std::string>(cfg->column_fill.at("name")), "none");

  auto bad = MappingConfig::from_toml(toml::parse("filll = 1\n"), "config.toml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("unknown key 'filll'"), std::string::npos) << bad.status().message();
}

TEST(MappingConfig, CommandLineSpecs) {
  MappingConfig c;
  EXPECT_FALSE(c.add_map_spec("features").ok());
  EXPECT_FALSE(c.add_map_spec("=a").ok());
  EXPECT_FALSE(c.add_map_spec("x=a,,b").ok());
  EXPECT_TRUE(c.add_fill_spec("true").ok());
  EXPECT_EQ(std::get<double>(*c.fill), 1.0);
  EXPECT_TRUE(c.add_fill_spec("col=n/a").ok());
  EXPECT_EQ(std::get<std::string>(c.column_fill.at("col")), "n/a");
}

}  // namespace
}  // namespace deskml::features
