// The JSON infer codec: the DOM-free request parser and response writer
// (server/infer_json_fast.cpp) against the DOM path they stand in for.
#include "server/infer_codec.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>

#include "server/infer_json_fast.hpp"

namespace deskml::server {
namespace {

using nlohmann::json;

constexpr int kDepth = 64;
const TensorLimits kLimits{};

// What the server did before the fast path: the DOM, then the tree walk.
Result<InferRequest> dom_parse(std::string_view text, int depth = kDepth) {
  auto j = parse_json(text, depth);
  if (!j.ok()) return j.status();
  return parse_infer_request(*j, {}, kLimits);
}

std::string describe(const Tensor& t) {
  std::string s = std::string(dtype_kserve_name(t.dtype())) + shape_to_string(t.shape());
  return s;
}

void expect_same_request(const InferRequest& a, const InferRequest& b, const std::string& text) {
  SCOPED_TRACE(text);
  EXPECT_EQ(a.id, b.id);
  ASSERT_EQ(a.inputs.size(), b.inputs.size());
  for (size_t i = 0; i < a.inputs.size(); ++i) {
    EXPECT_EQ(a.inputs[i].first, b.inputs[i].first);
    const Tensor& x = a.inputs[i].second;
    const Tensor& y = b.inputs[i].second;
    ASSERT_EQ(describe(x), describe(y));
    if (x.dtype() == DataType::kString) {
      for (int64_t k = 0; k < x.numel(); ++k) EXPECT_EQ(x.data<std::string>()[k], y.data<std::string>()[k]);
    } else if (x.nbytes() > 0) {
      EXPECT_EQ(std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()), 0) << "input " << i << " differs bitwise";
    }
  }
  ASSERT_EQ(a.features.has_value(), b.features.has_value());
  if (a.features) {
    EXPECT_EQ(a.features->source, b.features->source);
    EXPECT_EQ(a.features->keys, b.features->keys);
  }
  ASSERT_EQ(a.outputs.size(), b.outputs.size());
  for (size_t i = 0; i < a.outputs.size(); ++i) {
    EXPECT_EQ(a.outputs[i].name, b.outputs[i].name);
    EXPECT_EQ(a.outputs[i].binary, b.outputs[i].binary);
  }
  EXPECT_EQ(a.binary_outputs, b.binary_outputs);
  EXPECT_EQ(a.priority, b.priority);
  EXPECT_EQ(a.timeout_us, b.timeout_us);
}

// parse_infer_request on the body gives what the DOM path gives: the same request or
// the same error. Returns whether the fast path took it.
bool expect_agree(std::string_view text, int depth = kDepth) {
  auto fast = parse_infer_request_fast(text, depth, kLimits);
  auto dom = dom_parse(text, depth);
  auto full = parse_infer_request(text, std::nullopt, depth, kLimits);
  const std::string shown(text.substr(0, 300));
  if (fast) {
    EXPECT_TRUE(dom.ok()) << "the fast path accepted what the DOM path refuses (" << dom.status().message()
                          << "): " << shown;
    if (dom.ok()) expect_same_request(*fast, *dom, shown);
  }
  EXPECT_EQ(full.ok(), dom.ok()) << shown;
  if (full.ok() && dom.ok()) {
    expect_same_request(*full, *dom, shown);
  } else if (!full.ok() && !dom.ok()) {
    EXPECT_EQ(full.status().code(), dom.status().code()) << shown;
    EXPECT_EQ(full.status().message(), dom.status().message()) << shown;
  }
  return fast.has_value();
}

std::string input(const std::string& datatype, const std::string& shape, const std::string& data) {
  return R"({"inputs":[{"name":"x","datatype":")" + datatype + R"(","shape":)" + shape + R"(,"data":)" + data + "}]}";
}

TEST(InferCodecFast, TakesTheLoadTestRequest) {
  const std::string body =
      R"({"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 30], "data": [-0.7047, -1.3966, 0.6037, )"
      R"(-1.7103, 0.1435, -0.5372, -1.768, 0.0297, -1.85, -0.2654, -1.7206, -1.6371, -0.3019, 1.3074, -1.5048, -1.107, )"
      R"(0.5097, 1.7908, 0.3084, -0.4133, 1.905, -1.8137, 1.4339, -0.8416, -1.423, -1.5288, -0.7661, 1.2645, )"
      R"(-1.2771, 0.3264]}]})";
  EXPECT_TRUE(expect_agree(body));
  const auto r = parse_infer_request_fast(body, kDepth, kLimits);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->inputs.size(), 1u);
  EXPECT_EQ(r->inputs[0].first, "features");
  EXPECT_EQ(r->inputs[0].second.shape(), Shape({1, 30}));
  EXPECT_EQ(r->inputs[0].second.data<float>()[0], -0.7047f);
  EXPECT_EQ(r->inputs[0].second.data<float>()[29], 0.3264f);
}

TEST(InferCodecFast, TakesEverydayVariations) {
  const std::vector<std::string> taken = {
      // id, parameters, outputs, key order, whitespace
      R"({"id":"req-1","inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,4]]}]})",
      R"( {"inputs":[{"data":[[1,2],[3,4]],"shape":[2,2],"datatype":"FP32","name":"x"}],"id":"a"} )",
      "{\n\t\"inputs\" : [ { \"name\" : \"x\" , \"datatype\" : \"FP32\" , \"shape\" : [ 2 ] , \"data\" : [ 1 , 2 ] } "
      "]\r\n}",
      R"({"parameters":{"binary_data_output":true,"priority":5,"timeout":1000,"other":{"a":[1,"b",null]}},)"
      R"("inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]})",
      R"({"parameters":{"binary_data_output":1},"inputs":[],"outputs":[{"name":"y"},{"name":"z","parameters":)"
      R"({"binary_data":false}}]})",
      R"({"outputs":[{"name":"y","parameters":{"binary_data":true}}],"parameters":{"binary_data_output":false},)"
      R"("inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]})",
      R"({"outputs":[{"name":"y","parameters":{"binary_data":"yes","binary_data_output":0}}],)"
      R"("parameters":{"binary_data_output":true},"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]})",
      R"({"parameters":{"priority":-1000000,"timeout":0},"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]})",
      R"({"parameters":{"timeout":-0},"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]})",
      // unknown keys anywhere are ignored
      R"({"model":"m","inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1],"extra":[[{}]]}],"x":null})",
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1],"parameters":{"content_type":"str"}}]})",
      // two inputs, other datatypes and spellings
      R"({"inputs":[{"name":"a","datatype":"INT64","shape":[2],"data":[-9223372036854775808,9223372036854775807]},)"
      R"({"name":"b","datatype":"UINT64","shape":[2],"data":[0,18446744073709551615]}]})",
      input("BOOL", "[3]", "[true,false,true]"),
      input("INT8", "[3]", "[-128,127,-0]"),
      input("UINT8", "[2]", "[0,255]"),
      input("UINT8", "[1]", "[-0]"),
      input("INT16", "[2]", "[-32768,32767]"),
      input("UINT16", "[1]", "[65535]"),
      input("INT32", "[2]", "[-2147483648,2147483647]"),
      input("UINT32", "[1]", "[4294967295]"),
      input("FP64", "[4]", "[0.1,1e308,-2.5E-300,4.9e-324]"),
      input("FP16", "[3]", "[0.5,-2,65504]"),
      input("BF16", "[2]", "[1.5,-3e38]"),
      input("float32", "[1]", "[1]"),
      input("float", "[1]", "[1]"),
      // numbers: integers for floats, -0, exponents, rounding at the float/double boundary
      input("FP32", "[6]", "[1,-0,-0.0,0.0,1e3,1E-3]"),
      input("FP32", "[4]", "[16777217,9007199254740993,-9223372036854775808,18446744073709551615]"),
      input("FP32", "[2]", "[3.4028235e38,1.00000005960464477539062]"),
      input("FP32", "[2]", "[1.401298464324817e-45,7e-46]"),
      input("FP64", "[2]", "[9007199254740993,18446744073709551615]"),
      // nesting of data need not follow the shape, and data may be a bare number
      input("FP32", "[2,2]", "[[1],[2,[3,[4]]]]"),
      input("FP32", "[2,2]", "[[],[1,2,3,4],[]]"),
      input("FP32", "[1]", "7"),
      input("FP32", "[0]", "[]"),
      input("FP32", "[0,5]", "[[]]"),
      input("FP32", "[]", "[2.5]"),
  };
  for (const auto& body : taken) EXPECT_TRUE(expect_agree(body)) << "not taken by the fast path: " << body;
}

TEST(InferCodecFast, LeavesTheRestToTheDomAndAgreesWithIt) {
  const std::vector<std::string> declined = {
      // errors of every kind
      "",
      " ",
      "{",
      "[]",
      "null",
      "{}",
      R"({"inputs":{}})",
      R"({"inputs":[1]})",
      "{not json",
      R"({"inputs":[]} x)",
      R"({"inputs":[]},)",
      R"({"inputs":[{}]})",
      R"({"id":1,"inputs":[]})",
      R"({"parameters":[],"inputs":[]})",
      R"({"parameters":{"priority":1.5},"inputs":[]})",
      R"({"parameters":{"priority":1000001},"inputs":[]})",
      R"({"parameters":{"priority":18446744073709551615},"inputs":[]})",
      R"({"parameters":{"timeout":-1},"inputs":[]})",
      R"({"parameters":{"timeout":"1"},"inputs":[]})",
      R"({"parameters":{"timeout":9223372036854775808},"inputs":[]})",
      R"({"inputs":[],"outputs":{}})",
      R"({"inputs":[],"outputs":[1]})",
      R"({"inputs":[],"outputs":[{"name":1}]})",
      R"({"inputs":[],"outputs":[{"name":"y","parameters":1}]})",
      input("FP32", "[1,4]", "[1,2,3]"),
      input("FP32", "[1,4]", "[1,2,3,4,5]"),
      input("FP99", "[1]", "[1]"),
      input("FP32", "[4]", R"([1,2,"x",4])"),
      input("FP32", "[1]", "[true]"),
      input("FP32", "[1]", "[null]"),
      input("FP32", "[1]", "[NaN]"),
      input("FP32", "[1]", "[Infinity]"),
      input("FP32", "[1]", "[-Infinity]"),
      input("FP32", "[1]", "[nan]"),
      input("FP32", "[1]", "[1e400]"),
      input("FP64", "[1]", "[-1e400]"),
      input("FP64", "[1]", "[1e-400]"),
      input("FP32", "[1]", "[01]"),
      input("FP32", "[1]", "[1.]"),
      input("FP32", "[1]", "[.5]"),
      input("FP32", "[1]", "[+1]"),
      input("FP32", "[1]", "[1e]"),
      input("FP32", "[1]", "[0x10]"),
      input("FP32", "[1]", "[1,]"),
      input("FP32", "[1]", "[,1]"),
      input("FP32", "[1]", "[- 1]"),
      input("INT64", "[1]", "[9223372036854775808]"),
      input("INT64", "[1]", "[-9223372036854775809]"),
      input("UINT64", "[1]", "[18446744073709551616]"),
      input("INT64", "[1]", "[1.0]"),
      input("INT64", "[1]", "[1e2]"),
      input("INT8", "[1]", "[128]"),
      input("INT8", "[1]", "[-129]"),
      input("UINT8", "[1]", "[-1]"),
      input("UINT32", "[1]", "[4294967296]"),
      input("BOOL", "[1]", "[1]"),
      input("BOOL", "[1]", "[tru]"),
      input("FP32", "[-1]", "[]"),
      input("FP32", "[1099511627776,1099511627776]", "[]"),
      input("FP32", "[1.5]", "[1]"),
      input("FP32", "[18446744073709551615]", "[]"),
      input("FP32", R"(["1"])", "[1]"),
      input("FP32", "1", "[1]"),
      input("\"FP32\"", "[1]", "[1]"),
      input("FP32", "[1]", "{}"),
      // features, binary inputs, BYTES, escapes and non-ASCII, duplicates
      R"({"features":{"source":"s","keys":[1,"a"]}})",
      R"({"features":{"source":"s","keys":[]}})",
      R"({"inputs":[],"features":{"source":"s","keys":[1]}})",
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":4}}]})",
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1],"parameters":{"binary_data_size":4}}]})",
      input("BYTES", "[2]", R"(["a","b"])"),
      input("BYTES", "[1]", R"(["h\u00e9llo"])"),
      R"({"id":"a\"b","inputs":[]})",
      R"({"id":"caf\u00e9","inputs":[]})",
      "{\"id\":\"caf\xc3\xa9\",\"inputs\":[]}",
      "{\"id\":\"bad\xff\",\"inputs\":[]}",
      "{\"id\":\"tab\there\",\"inputs\":[]}",
      R"({"\u0069d":"x","inputs":[]})",
      R"({"id":"a","id":"b","inputs":[]})",
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}],"inputs":[]})",
      R"({"inputs":[{"name":"x","name":"y","datatype":"FP32","shape":[1],"data":[1]}]})",
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1],"data":[2]}]})",
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]},{"name":"x","datatype":"FP32","shape":[1],"data":[2]}]})",
      R"({"parameters":{"priority":1,"priority":2},"inputs":[]})",
      R"({"inputs":[],"outputs":[{"name":"y","name":"z"}]})",
      "\xef\xbb\xbf{\"inputs\":[]}",
      std::string("{\"inputs\":[]}\0", 14),
  };
  for (const auto& body : declined) {
    EXPECT_FALSE(expect_agree(body)) << "taken by the fast path: " << body;
  }
}

TEST(InferCodecFast, NestingNearTheLimit) {
  auto nested = [](int levels) {
    return R"({"junk":)" + std::string(levels, '[') + std::string(levels, ']') +
           R"(,"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]})";
  };
  for (int levels : {1, 10, 60, 61, 62, 63, 64, 65, 66, 200}) {
    SCOPED_TRACE(levels);
    expect_agree(nested(levels));
  }
  EXPECT_TRUE(expect_agree(nested(10)));
  EXPECT_FALSE(expect_agree(nested(200)));
  auto deep = parse_infer_request(nested(200), std::nullopt, kDepth, kLimits);
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.status().message().find("deeper"), std::string::npos);
  // Data nested deeper than a small limit.
  const std::string data = input("FP32", "[1]", "[[[[[1]]]]]");
  for (int depth : {1, 2, 4, 5, 6, 7, 8, 9, 64}) {
    SCOPED_TRACE(depth);
    expect_agree(data, depth);
  }
}

TEST(InferCodecFast, SameErrorsThroughThePublicEntry) {
  // The fast path never changes a message: these are the DOM path's words.
  auto error = [](const std::string& body) {
    auto r = parse_infer_request(body, std::nullopt, kDepth, kLimits);
    return r.ok() ? std::string("ok") : r.status().message();
  };
  EXPECT_EQ(error(input("FP32", "[1,4]", "[1,2,3]")), "input 'x': 3 data elements for shape [1,4] (4)");
  EXPECT_EQ(error(input("FP32", "[1]", "[1,2]")), "input 'x': more data elements than the shape holds");
  EXPECT_EQ(error(input("INT8", "[1]", "[200]")), "input 'x': data element 0: value out of range");
  EXPECT_EQ(error(input("FP32", "[1]", "[\"a\"]")), "input 'x': data element 0: expected a number");
  EXPECT_EQ(error(R"({"id":"a","id":"b","inputs":[]})"), "ok");
  EXPECT_EQ(error(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]},)"
                  R"({"name":"x","datatype":"FP32","shape":[1],"data":[2]}]})"),
            "input 'x' is given twice");
  EXPECT_EQ(error("{\"inputs\":[]} x").substr(0, 15), "malformed JSON:");
}

TEST(InferCodecFast, DuplicateKeysKeepTheLastLikeTheDom) {
  auto r = parse_infer_request(R"({"id":"a","id":"b","inputs":[]})", std::nullopt, kDepth, kLimits);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->id, "b");
}

TEST(InferCodecFast, BinaryDataAfterTheJsonGoesTheDomWay) {
  const std::string header =
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":8}}]})";
  std::string body = header;
  const float v[2] = {1.5f, -2};
  body.append(reinterpret_cast<const char*>(v), sizeof v);
  auto r = parse_infer_request(body, header.size(), kDepth, kLimits);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->inputs[0].second.data<float>()[1], -2.0f);
  // A JSON-only request with the header length given: the fast path still applies.
  const std::string plain = input("FP32", "[1]", "[3]");
  r = parse_infer_request(plain, plain.size(), kDepth, kLimits);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->inputs[0].second.data<float>()[0], 3.0f);
}

// Random edits of valid requests: whatever the result, the public entry agrees with
// the DOM path.
TEST(InferCodecFast, MutatedRequestsAgreeWithTheDom) {
  const std::vector<std::string> seeds = {
      R"({"id":"r1","parameters":{"binary_data_output":true,"priority":3,"timeout":10},"inputs":[{"name":"a",)"
      R"("datatype":"FP32","shape":[2,3],"data":[[1.5,-2,3e2],[0,-0.0,7]]},{"name":"b","datatype":"INT64",)"
      R"("shape":[2],"data":[9223372036854775807,-5]}],"outputs":[{"name":"y","parameters":{"binary_data":1}}]})",
      input("BOOL", "[2]", "[true,false]"),
      input("UINT8", "[2,1]", "[[255],[0]]"),
      R"({"inputs":[{"data":[1,2,3,4],"shape":[4],"datatype":"FP64","name":"z","parameters":{}}],"extra":{"k":[null]}})",
  };
  const std::string alphabet = "{}[]:,\" -+.eE0123456789truefalsnl\\x\t\n";
  std::mt19937 rng(12345);
  int taken = 0, total = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string s = seeds[iter % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      const size_t at = rng() % s.size();
      switch (rng() % 4) {
        case 0:
          s[at] = alphabet[rng() % alphabet.size()];
          break;
        case 1:
          s.erase(at, 1 + rng() % 3);
          break;
        case 2:
          s.insert(at, 1, alphabet[rng() % alphabet.size()]);
          break;
        default:
          s.resize(at);
          break;
      }
    }
    ++total;
    if (expect_agree(s)) ++taken;
    if (HasFailure()) break;
  }
  // Many edits leave a valid request (a changed digit, extra whitespace).
  EXPECT_GT(taken, total / 50);
}

// Decimal numbers of every length and exponent convert bit for bit as strtod does.
TEST(InferCodecFast, RandomDecimalsConvertLikeStrtod) {
  std::mt19937_64 rng(2026);
  for (int round = 0; round < 20; ++round) {
    std::string data = "[";
    const int n = 2000;
    for (int i = 0; i < n; ++i) {
      if (i > 0) data += ',';
      if (rng() % 2) data += '-';
      const int digits = 1 + static_cast<int>(rng() % 18);  // integers within 64 bits
      const int point = static_cast<int>(rng() % (digits + 1));
      std::string m;
      for (int k = 0; k < digits; ++k) m += static_cast<char>('0' + rng() % 10);
      // JSON: no leading zeros in the integer part
      std::string integer = point == 0 ? "0" : m.substr(0, point);
      while (integer.size() > 1 && integer[0] == '0') integer.erase(0, 1);
      data += integer;
      if (point < digits) data += "." + m.substr(point);
      if (rng() % 3 == 0) {
        data += rng() % 2 ? "e" : "E";
        const int sign = static_cast<int>(rng() % 3);
        if (sign == 1) data += '-';
        if (sign == 2) data += '+';
        data += std::to_string(rng() % 40);
      }
    }
    data += "]";
    EXPECT_TRUE(expect_agree(input("FP64", "[" + std::to_string(n) + "]", data)));
    EXPECT_TRUE(expect_agree(input("FP32", "[" + std::to_string(n) + "]", data)));
    if (HasFailure()) break;
  }
}

// ---- the response writer ----

Tensor make(DataType dtype, Shape shape) { return Tensor(dtype, std::move(shape)); }

template <typename T>
Tensor filled(Shape shape, std::vector<T> v) {
  Tensor t(dtype_of<T>, std::move(shape));
  for (size_t i = 0; i < v.size(); ++i) t.data<T>()[i] = v[i];
  return t;
}

void expect_same_response(const serving::InferResponse& response, const InferRequest& request) {
  std::string binary;
  auto dom = infer_response_json(response, request, binary);
  auto fast = encode_infer_response(response, request);
  ASSERT_EQ(fast.ok(), dom.ok());
  if (!dom.ok()) {
    EXPECT_EQ(fast.status().code(), dom.status().code());
    EXPECT_EQ(fast.status().message(), dom.status().message());
    return;
  }
  std::string expected = dom->dump(-1, ' ', false, json::error_handler_t::replace);
  const bool any_binary = std::any_of(dom->at("outputs").begin(), dom->at("outputs").end(),
                                      [](const json& o) { return o.contains("parameters"); });
  std::optional<size_t> json_size;
  if (!binary.empty() || any_binary) {
    json_size = expected.size();
    expected += binary;
  }
  EXPECT_EQ(fast->body, expected);
  EXPECT_EQ(fast->json_size, json_size);
}

TEST(InferCodecWriter, SameBytesAsTheDomDump) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  serving::InferResponse response;
  response.model = "mlp";
  response.version = 12;
  response.outputs = {
      {"f32", filled<float>({3, 4}, {0.1f, -0.0f, 0.0f, 1e-7f, 3.4028235e38f, -1.17549435e-38f, 1.4e-45f, nan, inf,
                                     -inf, 123456789.0f, 0.3333333f})},
      {"f64", filled<double>({5}, {0.1, -0.0, 1e300, 5e-324, 1.0 / 3})},
      {"f16", filled<Float16>({3}, {Float16(0.5f), Float16(-65504.0f), Float16(0.1f)})},
      {"bf16", filled<BFloat16>({2}, {BFloat16(1.5f), BFloat16(-3e38f)})},
      {"i8", filled<int8_t>({2}, {-128, 127})},
      {"u8", filled<uint8_t>({2}, {0, 255})},
      {"i16", filled<int16_t>({1}, {-32768})},
      {"u16", filled<uint16_t>({1}, {65535})},
      {"i32", filled<int32_t>({1}, {std::numeric_limits<int32_t>::min()})},
      {"u32", filled<uint32_t>({1}, {std::numeric_limits<uint32_t>::max()})},
      {"i64", filled<int64_t>({2}, {std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()})},
      {"u64", filled<uint64_t>({1}, {std::numeric_limits<uint64_t>::max()})},
      {"b", filled<bool>({3}, {true, false, true})},
      {"s", filled<std::string>({6}, {"plain", "qu\"ote\\", "tab\tnl\n\x01", "h\xc3\xa9llo", "bad\xff", ""})},
      {"empty", make(DataType::kFloat32, {0, 3})},
      {"scalar", filled<float>({}, {2.5f})},
      {"we\"ird name", filled<float>({1}, {1.0f})},
  };
  InferRequest request;
  expect_same_response(response, request);
  request.id = "req-1";
  expect_same_response(response, request);
  request.id = "id with \"quotes\" and \xc3\xa9";
  expect_same_response(response, request);
  request.binary_outputs = true;
  expect_same_response(response, request);
  request.binary_outputs = false;
  request.outputs = {{"s", true}, {"f32", false}, {"u8", true}, {"f32", true}};
  expect_same_response(response, request);
  request.outputs = {{"f16", false}};
  expect_same_response(response, request);
  request.outputs = {{"empty", true}};
  expect_same_response(response, request);  // a binary output of no bytes still sets json_size
  request.outputs = {{"f32", false}, {"missing", false}};
  expect_same_response(response, request);
  response.outputs.push_back({"undefined", Tensor()});
  request.outputs = {{"undefined", false}};
  expect_same_response(response, request);
}

TEST(InferCodecWriter, RandomFloatsFormatLikeNlohmann) {
  std::mt19937_64 rng(99);
  serving::InferResponse response;
  response.model = "m";
  std::vector<float> f(4096);
  std::vector<double> d(4096);
  for (size_t i = 0; i < f.size(); ++i) {
    uint32_t bits = static_cast<uint32_t>(rng());
    std::memcpy(&f[i], &bits, 4);
    const uint64_t b64 = rng();
    std::memcpy(&d[i], &b64, 8);
  }
  response.outputs = {{"f", filled<float>({4096}, f)}, {"d", filled<double>({4096}, d)}};
  expect_same_response(response, InferRequest{});
}

}  // namespace
}  // namespace deskml::server
