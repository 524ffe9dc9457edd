#pragma once
// Access logs: Envoy command-operator formats compiled once, lines appended to a per-worker
// buffer on the hot path, and whole buffers handed to one writer thread so a slow stdout or disk
// never blocks a worker.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "http/header.h"

namespace proxenos::observe {

// Emissary's default text format.
inline constexpr std::string_view kDefaultAccessLogFormat =
    "ACCESS [%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" "
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "
    "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" "
    "\"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"";

// Everything a log line may refer to; views are valid only during append().
struct AccessLogRecord {
  int64_t start_unix_ms = 0;
  std::string_view method;
  std::string_view path;           // :PATH as received (with query)
  std::string_view original_path;  // X-ENVOY-ORIGINAL-PATH when the path was rewritten
  std::string_view protocol;       // "HTTP/1.1"
  std::string_view authority;
  const http::HeaderList* request_headers = nullptr;
  const http::HeaderList* response_headers = nullptr;
  int response_code = 0;
  std::string_view response_flags;  // "-", "NR", "UF", "UT", "UC", "DC", "UH", ...
  uint64_t bytes_received = 0;
  uint64_t bytes_sent = 0;
  uint64_t duration_ms = 0;
  int64_t upstream_service_time_ms = -1;
  std::string_view upstream_host;
  std::string_view upstream_cluster;
  std::string_view downstream_remote_address;  // ip:port
  std::string_view request_id;
  std::string_view route_name;
};

class AccessLogFormat {
 public:
  // Parses an Envoy format string; nullopt (with `error`) on an unknown operator.
  static std::optional<AccessLogFormat> parse(std::string_view format, std::string* error);
  // Appends one line (with trailing newline) for `record`.
  void append(const AccessLogRecord& record, std::string& out) const;
  bool json() const { return json_; }

 private:
  enum class Op : uint8_t {
    kLiteral,
    kStartTime,
    kReq,
    kResp,
    kResponseCode,
    kResponseFlags,
    kBytesReceived,
    kBytesSent,
    kDuration,
    kUpstreamHost,
    kUpstreamCluster,
    kDownstreamRemote,
    kDownstreamRemoteNoPort,
    kProtocol,
    kRouteName,
  };
  struct Piece {
    Op op = Op::kLiteral;
    std::string text;      // literal, or lower-case header name
    std::string fallback;  // REQ(A?B): B
    size_t max_length = 0;
  };
  void append_piece(const Piece& piece, const AccessLogRecord& record, std::string& out) const;
  std::vector<Piece> pieces_;
  bool json_ = false;
};

// The one writer thread. Workers call submit() with a batch of lines (a few times a second).
class AccessLogSink {
 public:
  explicit AccessLogSink(int fd = 1);
  ~AccessLogSink();
  void submit(std::string&& lines);
  void flush();  // blocks until everything submitted so far is written (shutdown only)
  uint64_t dropped_bytes() const { return dropped_; }

 private:
  void run();
  int fd_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  std::deque<std::string> queue_;
  size_t queued_bytes_ = 0;
  bool writing_ = false;
  bool stop_ = false;
  uint64_t dropped_ = 0;
  std::thread thread_;
};

}  // namespace proxenos::observe
