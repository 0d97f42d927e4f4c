// String ops: StringNormalizer here, TfIdfVectorizer in string_tfidf.cpp.
#include <clocale>
#include <cwctype>
#include <locale.h>
#include <memory>
#include <unordered_set>

#include "kernels/cpu/common.hpp"
#include "kernels/cpu/cpu_registry.hpp"

namespace deskml::kernels::cpu {

void register_tfidf_kernels(KernelRegistry& r);  // string_tfidf.cpp

namespace {

// --- UTF-8 case mapping -------------------------------------------------------------
// Unicode simple case mapping through glibc's C.UTF-8 tables (towlower_l/towupper_l),
// whatever the process locale is. Bytes that are not valid UTF-8 pass through
// unchanged; if no UTF-8 locale exists, only ASCII letters change case.

locale_t utf8_locale() {
  static const locale_t loc = [] {
    locale_t l = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
    if (l == static_cast<locale_t>(nullptr)) l = newlocale(LC_CTYPE_MASK, "en_US.UTF-8", static_cast<locale_t>(nullptr));
    return l;
  }();
  return loc;
}

// Decodes one code point at s[i]; returns its byte length, or 0 when the bytes there are not valid UTF-8.
size_t decode_utf8(const std::string& s, size_t i, char32_t& cp) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  size_t len = 0;
  char32_t min = 0;
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  } else if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

void encode_utf8(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string change_case(const std::string& s, bool upper) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  // ASCII fast path up to the first non-ASCII byte.
  for (; i < s.size() && static_cast<unsigned char>(s[i]) < 0x80; ++i) {
    char c = s[i];
    if (upper && c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (!upper && c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    out += c;
  }
  if (i == s.size()) return out;
  const locale_t loc = utf8_locale();
  while (i < s.size()) {
    char32_t cp = 0;
    const size_t len = decode_utf8(s, i, cp);
    if (len == 0) {  // invalid byte: keep it
      out += s[i++];
      continue;
    }
    if (cp < 0x80) {
      if (upper && cp >= 'a' && cp <= 'z') cp = cp - 'a' + 'A';
      if (!upper && cp >= 'A' && cp <= 'Z') cp = cp - 'A' + 'a';
    } else if (loc != static_cast<locale_t>(nullptr)) {
      const wint_t w = upper ? towupper_l(static_cast<wint_t>(cp), loc) : towlower_l(static_cast<wint_t>(cp), loc);
      cp = static_cast<char32_t>(w);
    }
    encode_utf8(cp, out);
    i += len;
  }
  return out;
}

// --- StringNormalizer (opset 10) -------------------------------------------------------

class StringNormalizerKernel final : public Kernel {
 public:
  explicit StringNormalizerKernel(const graph::Node& node) {
    try {
      const std::string action = node.attr_string("case_change_action", "NONE");
      if (action == "LOWER") {
        action_ = Action::kLower;
      } else if (action == "UPPER") {
        action_ = Action::kUpper;
      } else if (action != "NONE") {
        config_ = invalid_argument(node.label() + ": case_change_action must be LOWER, UPPER or NONE, got '" +
                                   action + "'");
      }
      case_sensitive_ = node.attr_int("is_case_sensitive", 0) != 0;
      for (const auto& w : node.attr_strings("stopwords")) {
        stopwords_.insert(case_sensitive_ ? w : change_case(w, false));
      }
    } catch (const Error& e) {
      config_ = e.status();
    }
  }

  Status compute(KernelContext& ctx) override {
    DESKML_RETURN_IF_ERROR(config_);
    const Tensor& x = ctx.required_input(0);
    if (x.dtype() != DataType::kString) return ctx.error("input must be a string tensor");
    const bool two_d = x.rank() == 2;
    if (!(x.rank() == 1 || (two_d && x.shape()[0] == 1))) {
      return ctx.error("input must have shape [C] or [1, C], got " + x.description());
    }
    const std::string* in = x.data<std::string>();
    const int64_t n = x.numel();
    std::vector<int64_t> kept;
    kept.reserve(static_cast<size_t>(n));
    if (stopwords_.empty()) {
      for (int64_t i = 0; i < n; ++i) kept.push_back(i);
    } else {
      for (int64_t i = 0; i < n; ++i) {
        const bool stop = case_sensitive_ ? stopwords_.count(in[i]) != 0 : stopwords_.count(change_case(in[i], false)) != 0;
        if (!stop) kept.push_back(i);
      }
    }
    if (kept.empty()) {  // everything dropped: one empty string
      Tensor& out = ctx.allocate_output(0, DataType::kString, two_d ? Shape{1, 1} : Shape{1});
      out.data<std::string>()[0].clear();
      return Status::Ok();
    }
    const auto m = static_cast<int64_t>(kept.size());
    Tensor& out = ctx.allocate_output(0, DataType::kString, two_d ? Shape{1, m} : Shape{m});
    std::string* o = out.data<std::string>();
    const Action action = action_;
    parallel_for(m, ctx.threads(), 32, [&](int64_t lo, int64_t hi) {
      for (int64_t j = lo; j < hi; ++j) {
        const std::string& s = in[kept[static_cast<size_t>(j)]];
        o[j] = action == Action::kNone ? s : change_case(s, action == Action::kUpper);
      }
    });
    return Status::Ok();
  }

 private:
  enum class Action { kNone, kLower, kUpper };
  Action action_ = Action::kNone;
  bool case_sensitive_ = false;
  std::unordered_set<std::string> stopwords_;
  Status config_;
};

}  // namespace

void register_string_kernels(KernelRegistry& r) {
  KernelDef def;
  def.op = "StringNormalizer";
  def.since = 10;
  def.types = {DataType::kString};
  def.factory = [](const graph::Node& node) { return std::make_unique<StringNormalizerKernel>(node); };
  r.add(std::move(def));
  register_tfidf_kernels(r);
}

}  // namespace deskml::kernels::cpu
