// The response header the server writes itself (append_response_head) against
// Beast's serializer, which it replaces for Content-Length answers.
#include <gtest/gtest.h>

#include <sstream>

#include "server/http_types.hpp"

namespace deskml::server {
namespace {

std::string beast_bytes(const Response& res) {
  std::ostringstream os;
  os << res;
  return os.str();
}

std::string our_bytes(const Response& res) {
  std::string out;
  append_response_head(res, out);
  return out + res.body();
}

TEST(ResponseHead, SameBytesAsBeast) {
  Response ok{http::status::ok, 11};
  ok.set(http::field::content_type, "application/json");
  ok.body() = R"({"a":1})";
  ok.set(http::field::server, "deskml");
  ok.set("X-Request-Id", "r1234-1f");
  ok.set("Inference-Header-Content-Length", "7");
  ok.keep_alive(true);
  ok.prepare_payload();
  EXPECT_EQ(our_bytes(ok), beast_bytes(ok));

  Response closing{http::status::service_unavailable, 10};
  closing.set(http::field::retry_after, "1");
  closing.body() = "busy";
  closing.keep_alive(false);
  closing.prepare_payload();
  EXPECT_EQ(our_bytes(closing), beast_bytes(closing));

  Response empty{http::status::no_content, 11};
  empty.set(http::field::allow, "GET, POST, OPTIONS");
  empty.set(http::field::access_control_allow_origin, "http://localhost:3000");
  empty.prepare_payload();
  EXPECT_EQ(our_bytes(empty), beast_bytes(empty));

  Response custom{http::status::bad_request, 11};
  custom.reason("Not Like That");
  custom.body() = std::string("\0\xff", 2);
  custom.prepare_payload();
  EXPECT_EQ(our_bytes(custom), beast_bytes(custom));

  for (const unsigned code : {100u, 101u, 204u, 301u, 401u, 404u, 405u, 413u, 429u, 431u, 500u, 599u, 999u}) {
    Response r{static_cast<http::status>(code), 11};
    if (code >= 200 && code != 204 && code != 304) r.body() = "x";
    r.prepare_payload();
    EXPECT_EQ(our_bytes(r), beast_bytes(r)) << code;
  }
}

}  // namespace
}  // namespace deskml::server
