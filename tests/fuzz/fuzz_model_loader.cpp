// libFuzzer target: untrusted bytes -> ModelProto -> graph IR -> Session -> one
// run on zero-filled inputs. Any crash, sanitizer report, leak or hang is a bug;
// every expected failure must come back as a Status.
#include <google/protobuf/stubs/logging.h>

#include <cstddef>
#include <cstdint>

#include "model_harness.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Protobuf logs some parse failures to stderr; a fuzzer would print millions.
  google::protobuf::SetLogHandler([](google::protobuf::LogLevel, const char*, int, const std::string&) {});
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)deskml::fuzz::exercise_model_bytes(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
