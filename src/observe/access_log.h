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

// Emissary's default `envoy_log_type: json` format (python/ambassador/envoy/v3/v3listener.py),
// same keys in the same order.
inline constexpr std::string_view kDefaultJsonAccessLogFormat = R"({
  "start_time": "%START_TIME%",
  "method": "%REQ(:METHOD)%",
  "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
  "protocol": "%PROTOCOL%",
  "response_code": "%RESPONSE_CODE%",
  "response_flags": "%RESPONSE_FLAGS%",
  "bytes_received": "%BYTES_RECEIVED%",
  "bytes_sent": "%BYTES_SENT%",
  "duration": "%DURATION%",
  "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
  "x_forwarded_for": "%REQ(X-FORWARDED-FOR)%",
  "user_agent": "%REQ(USER-AGENT)%",
  "request_id": "%REQ(X-REQUEST-ID)%",
  "authority": "%REQ(:AUTHORITY)%",
  "upstream_host": "%UPSTREAM_HOST%",
  "upstream_cluster": "%UPSTREAM_CLUSTER%",
  "upstream_local_address": "%UPSTREAM_LOCAL_ADDRESS%",
  "downstream_local_address": "%DOWNSTREAM_LOCAL_ADDRESS%",
  "downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%",
  "requested_server_name": "%REQUESTED_SERVER_NAME%",
  "istio_policy_status": "%DYNAMIC_METADATA(istio.mixer:status)%",
  "upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%"
})";

// Everything a log line may refer to; views are valid only during append().
struct AccessLogRecord {
  int64_t start_unix_ms = 0;
  std::string_view method;
  std::string_view path;           // :PATH as received (with query)
  std::string_view original_path;  // X-ENVOY-ORIGINAL-PATH when the path was rewritten
  std::string_view protocol;       // "HTTP/1.1"
  std::string_view authority;
  const http::HeaderList* request_headers = nullptr;
  // The x-forwarded-for we send upstream, which REQ(X-FORWARDED-FOR) shows (Envoy logs the
  // request after its append); null: the client's, from request_headers.
  const std::string* forwarded_for = nullptr;
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
  std::string_view downstream_local_address;  // ip:port the request arrived on
  std::string_view upstream_local_address;    // ip:port of our side of the upstream connection
  std::string_view requested_server_name;     // TLS SNI
  std::string_view upstream_transport_failure_reason;
};

class AccessLogFormat {
 public:
  // Parses an Envoy format string; nullopt (with `error`) on an unknown operator.
  static std::optional<AccessLogFormat> parse(std::string_view format, std::string* error);
  // Parses an Envoy json_format: a JSON object of key -> format string (nested objects allowed,
  // other JSON values are copied as constants). Each line is then one JSON object with the keys in
  // the given order. A value that is exactly one numeric operator (RESPONSE_CODE, BYTES_RECEIVED,
  // BYTES_SENT, DURATION) is a JSON number; a value that is exactly one other operator is a string,
  // or null when the value is missing; anything else is a string with the operators substituted.
  static std::optional<AccessLogFormat> parse_json(std::string_view json_object_text,
                                                   std::string* error);
  // Appends one line (with trailing newline) for `record`; allocates nothing but `out`'s growth.
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
    kUpstreamLocal,
    kDownstreamLocal,
    kDownstreamLocalNoPort,
    kRequestedServerName,
    kUpstreamTransportFailure,
    kAlwaysMissing,  // operators we accept but have no value for (DYNAMIC_METADATA, ...)
  };
  // How an operator's value is written.
  enum class Mode : uint8_t {
    kText,        // as is ("-" when missing), CR/LF become spaces
    kJsonString,  // inside a JSON string: escaped, "-" when missing
    kJsonValue,   // the whole JSON value: number, escaped quoted string, or null when missing
  };
  // REQ() names with a value of their own rather than a request header's, resolved at parse.
  enum class ReqSource : uint8_t {
    kHeader,
    kMethod,
    kPath,
    kAuthority,
    kOriginalPath,
    kRequestId,
    kForwardedFor,
  };
  struct Piece {
    Op op = Op::kLiteral;
    Mode mode = Mode::kText;
    std::string text;                                // literal, or lower-case header name
    std::string fallback;                            // REQ(A?B): B
    ReqSource source = ReqSource::kHeader;           // of `text` (REQ)
    ReqSource fallback_source = ReqSource::kHeader;  // of `fallback`
    bool service_time = false;  // RESP(x-envoy-upstream-service-time): our own measure
    size_t max_length = 0;
  };
  static ReqSource req_source(std::string_view lower_name);
  static bool parse_template(std::string_view format, std::vector<Piece>& out, std::string* error);
  friend class JsonFormatBuilder;  // access_log.cc: keeps nlohmann out of this header
  void add_literal(std::string_view text);
  void append_piece(const Piece& piece, const AccessLogRecord& record, std::string& out) const;
  std::string_view value_of(const Piece& piece, const AccessLogRecord& record) const;
  // Formats with more pieces take the general path.
  static constexpr size_t kMaxTextPieces = 64;
  void append_text(const AccessLogRecord& record, std::string& out) const;
  std::vector<Piece> pieces_;
  bool json_ = false;
};

// The one writer thread. Workers call submit() with a batch of lines (a few times a second).
class AccessLogSink {
 public:
  explicit AccessLogSink(int fd = 1);
  ~AccessLogSink();
  // Writes from now on to `path` ("" and "/dev/fd/1" = stdout; anything else is opened
  // O_WRONLY|O_APPEND|O_CREAT, mode 0644). A file is opened afresh on every call, so a reload
  // after log rotation starts the new file. On failure the previous destination stays and
  // `error` says why. Lines already queued may go to either destination.
  bool reopen(const std::string& path, std::string* error);
  void submit(std::string&& lines);
  void flush();  // blocks until everything submitted so far is written (shutdown only)
  uint64_t dropped_bytes() const { return dropped_; }

 private:
  void run();
  int fd_;
  bool owns_fd_ = false;          // fd_ is ours to close (not the stdout we were given)
  std::vector<int> retired_fds_;  // replaced while a write was using them: closed by the writer
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
