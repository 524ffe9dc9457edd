#include "observe/access_log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

namespace proxenos::observe {
namespace {

using namespace std::string_literals;

// 2026-11-28T20:54:48.710Z
constexpr int64_t kStartMs = 1795899288710;

struct Fixture {
  http::HeaderList request_headers;
  http::HeaderList response_headers;
  AccessLogRecord record;

  Fixture() {
    request_headers = {{"User-Agent", "curl/8.0"},
                       {"X-Forwarded-For", "10.0.0.1"},
                       {"X-Long", "abcdefghij"},
                       {"X-Empty", ""}};
    response_headers = {{"Content-Type", "text/plain"}};
    record.start_unix_ms = kStartMs;
    record.method = "GET";
    record.path = "/api/x?y=1";
    record.protocol = "HTTP/1.1";
    record.authority = "example.com";
    record.request_headers = &request_headers;
    record.response_headers = &response_headers;
    record.response_code = 200;
    record.response_flags = "-";
    record.bytes_received = 12;
    record.bytes_sent = 345;
    record.duration_ms = 6;
    record.upstream_service_time_ms = 4;
    record.upstream_host = "127.0.0.1:9000";
    record.upstream_cluster = "cluster_echo";
    record.downstream_remote_address = "192.168.1.2:5555";
    record.request_id = "rid-1";
  }
};

std::string render_text(std::string_view format, const AccessLogRecord& r) {
  std::string error;
  auto f = AccessLogFormat::parse(format, &error);
  EXPECT_TRUE(f) << error;
  if (!f) return {};
  std::string out;
  f->append(r, out);
  return out;
}

nlohmann::ordered_json render_json(std::string_view format, const AccessLogRecord& r,
                                   std::string* raw = nullptr) {
  std::string error;
  auto f = AccessLogFormat::parse_json(format, &error);
  EXPECT_TRUE(f) << error;
  if (!f) return {};
  EXPECT_TRUE(f->json());
  std::string out;
  f->append(r, out);
  if (raw) *raw = out;
  EXPECT_EQ(out.back(), '\n');
  EXPECT_EQ(out.find('\n'), out.size() - 1) << out;
  auto parsed = nlohmann::ordered_json::parse(out, nullptr, false);
  EXPECT_FALSE(parsed.is_discarded()) << out;
  return parsed;
}

TEST(AccessLogText, DefaultFormat) {
  Fixture fx;
  EXPECT_EQ(render_text(kDefaultAccessLogFormat, fx.record),
            "ACCESS [2026-11-28T20:54:48.710Z] \"GET /api/x?y=1 HTTP/1.1\" 200 - 12 345 6 4 "
            "\"10.0.0.1\" \"curl/8.0\" \"rid-1\" \"example.com\" \"127.0.0.1:9000\"\n");
}

TEST(AccessLogText, RequestHeaderFallback) {
  Fixture fx;
  EXPECT_EQ(render_text("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", fx.record), "/api/x?y=1\n");
  fx.record.original_path = "/orig";
  EXPECT_EQ(render_text("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", fx.record), "/orig\n");
  EXPECT_EQ(render_text("%REQ(X-MISSING?USER-AGENT)%", fx.record), "curl/8.0\n");
  EXPECT_EQ(render_text("%REQ(X-MISSING?X-ALSO-MISSING)%", fx.record), "-\n");
  // Header names are case-insensitive.
  EXPECT_EQ(render_text("%REQ(user-agent)% %RESP(content-type)%", fx.record),
            "curl/8.0 text/plain\n");
}

TEST(AccessLogText, ForwardedForIsTheValueSentUpstream) {
  Fixture fx;
  EXPECT_EQ(render_text("%REQ(X-FORWARDED-FOR)%", fx.record), "10.0.0.1\n");
  std::string sent = "10.0.0.1, 192.168.1.2";
  fx.record.forwarded_for = &sent;
  EXPECT_EQ(render_text("%REQ(X-FORWARDED-FOR)% %REQ(x-forwarded-for)%", fx.record),
            "10.0.0.1, 192.168.1.2 10.0.0.1, 192.168.1.2\n");
  std::string none;
  fx.record.forwarded_for = &none;  // none sent upstream
  EXPECT_EQ(render_text("%REQ(X-FORWARDED-FOR)%", fx.record), "-\n");
  EXPECT_EQ(render_text("%REQ(X-FORWARDED-FOR?USER-AGENT)%", fx.record), "curl/8.0\n");
}

TEST(AccessLogText, MissingAndEmptyValuesAreDash) {
  Fixture fx;
  fx.record.response_headers = nullptr;
  fx.record.upstream_service_time_ms = -1;
  fx.record.upstream_host = {};
  EXPECT_EQ(render_text("%REQ(X-EMPTY)% %RESP(CONTENT-TYPE)% "
                        "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% %UPSTREAM_HOST% %ROUTE_NAME% "
                        "%DYNAMIC_METADATA(istio.mixer:status)% %REQUESTED_SERVER_NAME%",
                        fx.record),
            "- - - - - - -\n");
}

TEST(AccessLogText, LengthLimit) {
  Fixture fx;
  EXPECT_EQ(render_text("%REQ(X-LONG):3%|%REQ(X-LONG):100%|%REQ(:PATH):4%", fx.record),
            "abc|abcdefghij|/api\n");
}

TEST(AccessLogText, OperatorsAndLiterals) {
  Fixture fx;
  fx.record.route_name = "r1";
  EXPECT_EQ(render_text("100%% %PROTOCOL% %RESPONSE_CODE% %BYTES_RECEIVED%/%BYTES_SENT% "
                        "%DURATION% %UPSTREAM_CLUSTER% %DOWNSTREAM_REMOTE_ADDRESS% "
                        "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %ROUTE_NAME%",
                        fx.record),
            "100% HTTP/1.1 200 12/345 6 cluster_echo 192.168.1.2:5555 192.168.1.2 r1\n");
  fx.record.downstream_remote_address = "[::1]:80";
  EXPECT_EQ(render_text("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", fx.record), "::1\n");
}

TEST(AccessLogText, ValuesCannotForgeLines) {
  Fixture fx;
  fx.request_headers.push_back({"X-Evil", "a\r\nACCESS [forged]"});
  EXPECT_EQ(render_text("%REQ(X-EVIL)%", fx.record), "a  ACCESS [forged]\n");
  // Anywhere in a long value (checked a word at a time) or its tail; tabs and other bytes stay.
  fx.request_headers.push_back({"X-Multi-Line",
                                "0123456\n89abcdef\t\x0b\r"
                                "0123\r567\x0e\n"});
  EXPECT_EQ(render_text("%REQ(X-MULTI-LINE)%", fx.record),
            "0123456 89abcdef\t\x0b 0123 567\x0e \n");
}

TEST(AccessLogText, Errors) {
  std::string error;
  EXPECT_FALSE(AccessLogFormat::parse("%NOT_AN_OPERATOR%", &error));
  EXPECT_NE(error.find("NOT_AN_OPERATOR"), std::string::npos) << error;
  error.clear();
  EXPECT_FALSE(AccessLogFormat::parse("abc %START_TIME", &error));
  EXPECT_NE(error.find("unterminated"), std::string::npos) << error;
  EXPECT_FALSE(AccessLogFormat::parse("%REQ(X-A):x%", &error));
  EXPECT_FALSE(AccessLogFormat::parse("%REQ(X-A):0%", &error));
  auto text = AccessLogFormat::parse("plain", &error);
  ASSERT_TRUE(text);
  EXPECT_FALSE(text->json());
}

TEST(AccessLogJson, TypesAndOrder) {
  Fixture fx;
  std::string raw;
  auto j = render_json(
      R"({"start": "%START_TIME%", "status": "%RESPONSE_CODE%", "path": "%REQ(:PATH)%",
          "rx": "%BYTES_RECEIVED%", "tx": "%BYTES_SENT%", "ms": "%DURATION%",
          "ust": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%", "flags": "%RESPONSE_FLAGS%",
          "missing": "%REQ(X-NOPE)%", "mixed": "code=%RESPONSE_CODE% ua=%REQ(X-NOPE)%",
          "const": "literal", "num": 7, "flag": true})",
      fx.record, &raw);
  ASSERT_TRUE(j.is_object()) << raw;
  std::vector<std::string> keys;
  for (const auto& [k, v] : j.items()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"start", "status", "path", "rx", "tx", "ms", "ust",
                                            "flags", "missing", "mixed", "const", "num", "flag"}));
  EXPECT_EQ(j["start"], "2026-11-28T20:54:48.710Z");
  EXPECT_TRUE(j["status"].is_number_integer());
  EXPECT_EQ(j["status"], 200);
  EXPECT_EQ(j["path"], "/api/x?y=1");
  EXPECT_EQ(j["rx"], 12);
  EXPECT_EQ(j["tx"], 345);
  EXPECT_EQ(j["ms"], 6);
  EXPECT_EQ(j["ust"], "4");
  EXPECT_TRUE(j["flags"].is_null()) << "\"-\" is null";
  EXPECT_TRUE(j["missing"].is_null());
  EXPECT_EQ(j["mixed"], "code=200 ua=-");
  EXPECT_EQ(j["const"], "literal");
  EXPECT_EQ(j["num"], 7);
  EXPECT_EQ(j["flag"], true);
  // One compact line.
  EXPECT_EQ(raw.rfind("{\"start\":\"2026-11-28T20:54:48.710Z\",\"status\":200,", 0), 0u) << raw;
}

TEST(AccessLogJson, FlagsWhenSet) {
  Fixture fx;
  fx.record.response_flags = "NR";
  fx.record.response_code = 404;
  auto j = render_json(R"({"f": "%RESPONSE_FLAGS%", "c": "%RESPONSE_CODE%"})", fx.record);
  EXPECT_EQ(j["f"], "NR");
  EXPECT_EQ(j["c"], 404);
}

TEST(AccessLogJson, NestedObjects) {
  Fixture fx;
  auto j = render_json(R"({"req": {"method": "%REQ(:METHOD)%", "ua": "%REQ(USER-AGENT)%"},
                           "code": "%RESPONSE_CODE%"})",
                       fx.record);
  EXPECT_EQ(j["req"]["method"], "GET");
  EXPECT_EQ(j["req"]["ua"], "curl/8.0");
  EXPECT_EQ(j["code"], 200);
}

TEST(AccessLogJson, HostileValuesAreEscaped) {
  Fixture fx;
  std::string hostile =
      "q\"uote\\back\r\nnew\x01"
      "ctl\ttab\xff\xfe end";
  std::string utf8 = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
  std::string broken = "a\xc3";       // truncated sequence
  std::string overlong = "\xc0\xaf";  // overlong '/'
  std::string surrogate = "\xed\xa0\x80";
  fx.request_headers.push_back({"X-Hostile", hostile});
  fx.request_headers.push_back({"X-Utf8", utf8});
  fx.request_headers.push_back({"X-Broken", broken});
  fx.request_headers.push_back({"X-Overlong", overlong});
  fx.request_headers.push_back({"X-Surrogate", surrogate});
  std::string raw;
  auto j = render_json(
      R"({"h": "%REQ(X-HOSTILE)%", "in": "<%REQ(X-HOSTILE)%>", "u": "%REQ(X-UTF8)%",
          "b": "%REQ(X-BROKEN)%", "o": "%REQ(X-OVERLONG)%", "s": "%REQ(X-SURROGATE)%",
          "lit\"key": "a\"b\\c"})",
      fx.record, &raw);
  ASSERT_TRUE(j.is_object()) << raw;
  // Invalid bytes are read as Latin-1 (\u00XX); everything else round-trips exactly.
  std::string expect =
      "q\"uote\\back\r\nnew\x01"
      "ctl\ttab\xc3\xbf\xc3\xbe end";
  EXPECT_EQ(j["h"], expect);
  EXPECT_EQ(j["in"], "<" + expect + ">");
  EXPECT_EQ(j["u"], utf8);
  EXPECT_EQ(j["b"], "a\xc3\x83");
  EXPECT_EQ(j["o"], "\xc3\x80\xc2\xaf");
  EXPECT_EQ(j["s"], "\xc3\xad\xc2\xa0\xc2\x80");
  EXPECT_EQ(j["lit\"key"], "a\"b\\c");
  // The raw line carries no control bytes and no bytes above 0x7f except valid UTF-8.
  for (size_t i = 0; i + 1 < raw.size(); ++i) {
    EXPECT_GE(static_cast<unsigned char>(raw[i]), 0x20) << "offset " << i;
  }
  EXPECT_NE(raw.find("\\u0001"), std::string::npos) << raw;
  EXPECT_NE(raw.find("\\u00ff"), std::string::npos) << raw;
  EXPECT_NE(raw.find("\\r\\n"), std::string::npos) << raw;
}

TEST(AccessLogJson, LengthLimitAppliesBeforeEscaping) {
  Fixture fx;
  fx.request_headers.push_back({"X-Q", "\"\"\"\"\"\""});
  auto j = render_json(R"({"q": "%REQ(X-Q):2%"})", fx.record);
  EXPECT_EQ(j["q"], "\"\"");
}

TEST(AccessLogJson, DefaultFormatHasEmissaryKeys) {
  Fixture fx;
  auto j = render_json(kDefaultJsonAccessLogFormat, fx.record);
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j.size(), 22u);
  EXPECT_EQ(j.begin().key(), "start_time");
  EXPECT_EQ(j["method"], "GET");
  EXPECT_EQ(j["path"], "/api/x?y=1");
  EXPECT_EQ(j["protocol"], "HTTP/1.1");
  EXPECT_EQ(j["response_code"], 200);
  EXPECT_TRUE(j["response_flags"].is_null());
  EXPECT_EQ(j["bytes_received"], 12);
  EXPECT_EQ(j["bytes_sent"], 345);
  EXPECT_EQ(j["duration"], 6);
  EXPECT_EQ(j["upstream_service_time"], "4");
  EXPECT_EQ(j["x_forwarded_for"], "10.0.0.1");
  EXPECT_EQ(j["user_agent"], "curl/8.0");
  EXPECT_EQ(j["request_id"], "rid-1");
  EXPECT_EQ(j["authority"], "example.com");
  EXPECT_EQ(j["upstream_host"], "127.0.0.1:9000");
  EXPECT_EQ(j["upstream_cluster"], "cluster_echo");
  EXPECT_EQ(j["downstream_remote_address"], "192.168.1.2:5555");
  EXPECT_TRUE(j["istio_policy_status"].is_null());
  EXPECT_TRUE(j["upstream_transport_failure_reason"].is_null());
}

TEST(AccessLogJson, Errors) {
  std::string error;
  EXPECT_FALSE(AccessLogFormat::parse_json("{\"a\": ", &error));
  EXPECT_FALSE(error.empty());
  error.clear();
  EXPECT_FALSE(AccessLogFormat::parse_json("[\"%START_TIME%\"]", &error));
  EXPECT_NE(error.find("object"), std::string::npos) << error;
  error.clear();
  EXPECT_FALSE(AccessLogFormat::parse_json(R"({"a": {"b": "%BOGUS%"}})", &error));
  EXPECT_NE(error.find("a.b"), std::string::npos) << error;
  EXPECT_NE(error.find("BOGUS"), std::string::npos) << error;
  EXPECT_FALSE(AccessLogFormat::parse_json(R"({"a": ["%START_TIME%"]})", &error));
}

TEST(AccessLogJson, AppendOnlyGrowsOutput) {
  Fixture fx;
  std::string error;
  auto f = AccessLogFormat::parse_json(kDefaultJsonAccessLogFormat, &error);
  ASSERT_TRUE(f);
  std::string out = "previous\n";
  f->append(fx.record, out);
  f->append(fx.record, out);
  std::istringstream lines(out);
  std::string line;
  std::getline(lines, line);
  EXPECT_EQ(line, "previous");
  int n = 0;
  while (std::getline(lines, line)) {
    EXPECT_FALSE(nlohmann::json::parse(line, nullptr, false).is_discarded()) << line;
    ++n;
  }
  EXPECT_EQ(n, 2);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(AccessLogSink, ReopenSwitchesFileAndKeepsOldOnError) {
  auto dir = std::filesystem::temp_directory_path() / ("proxenos-alog-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::string a = (dir / "a.log").string();
  std::string b = (dir / "b.log").string();
  { std::ofstream(a) << "existing\n"; }
  {
    AccessLogSink sink;
    std::string error;
    ASSERT_TRUE(sink.reopen(a, &error)) << error;
    sink.submit("one\n");
    sink.flush();
    EXPECT_FALSE(sink.reopen((dir / "no/such/dir/x.log").string(), &error));
    EXPECT_NE(error.find("no/such/dir"), std::string::npos) << error;
    sink.submit("two\n");
    sink.flush();
    ASSERT_TRUE(sink.reopen(b, &error)) << error;
    sink.submit("three\n");
    sink.flush();
  }
  EXPECT_EQ(read_file(a), "existing\none\ntwo\n");
  EXPECT_EQ(read_file(b), "three\n");
  EXPECT_EQ(std::filesystem::status(b).permissions() & std::filesystem::perms::all &
                ~std::filesystem::perms::group_write & ~std::filesystem::perms::others_write,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                std::filesystem::perms::group_read | std::filesystem::perms::others_read);
  std::filesystem::remove_all(dir);
}

TEST(AccessLogSink, ReopenToStdoutDoesNotCloseIt) {
  AccessLogSink sink;
  std::string error;
  EXPECT_TRUE(sink.reopen("", &error));
  EXPECT_TRUE(sink.reopen("/dev/fd/1", &error));
  EXPECT_NE(fcntl(1, F_GETFD), -1);
}

TEST(AccessLogSink, ReopenWhileWriting) {
  auto dir =
      std::filesystem::temp_directory_path() / ("proxenos-alog2-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::string a = (dir / "a.log").string();
  std::string b = (dir / "b.log").string();
  size_t lines = 0;
  {
    AccessLogSink sink;
    std::string error;
    for (int i = 0; i < 200; ++i) {
      ASSERT_TRUE(sink.reopen(i % 2 ? a : b, &error)) << error;
      sink.submit(std::string(1000, 'x') + "\n");
      ++lines;
    }
    sink.flush();
  }
  std::string all = read_file(a) + read_file(b);
  EXPECT_EQ(all.size(), lines * 1001);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace proxenos::observe
