#pragma once
// A small HTTP/1.1 client for the Kubernetes API on the control thread's event loop: one request
// per connection (`Connection: close`), plain or over our TLS stack, non-blocking throughout
// except the name lookup of the API server's host (getaddrinfo; in a pod it is an IP literal).
// Watches are long-lived chunked responses whose JSON objects are handed out one by one.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "k8s/kube_config.h"
#include "net/event_loop.h"
#include "net/tls_context.h"

namespace proxenos::k8s {

// Largest non-streamed response body accepted (a list of every Mapping of a big cluster fits).
inline constexpr size_t kMaxResponseBytes = 256 * 1024 * 1024;
inline constexpr uint64_t kDefaultRequestTimeoutMs = 60'000;
inline constexpr uint64_t kConnectTimeoutMs = 10'000;

struct ApiRequest {
  std::string method = "GET";
  std::string path;  // path and query, without the server URL's path prefix
  std::string body;
  std::string content_type;  // with a body
  // Whole-exchange deadline. For streams: how long the stream may last at most, which should
  // exceed the watch's timeoutSeconds so the server normally ends it first.
  uint64_t timeout_ms = kDefaultRequestTimeoutMs;
};

struct ApiResponse {
  int status = 0;     // 0 when no response head arrived (see error)
  std::string error;  // transport or framing problem; "" for a complete exchange
  std::string body;   // whole body (streams: only for a non-2xx status)
  std::string content_type;
  uint64_t retry_after_s = 0;  // Retry-After in seconds, 0 when absent
  bool ok() const { return error.empty() && status >= 200 && status < 300; }
};

// Streamed responses (watches). on_open runs when a 2xx head arrives; on_object for each JSON
// object of the body; on_end exactly once: after a clean end (error ""), a broken stream (error
// set, status kept), or instead of on_open for a non-2xx status (body collected) or a failure
// before the head.
struct StreamHandlers {
  std::function<void(const ApiResponse& head)> on_open;
  std::function<void(std::string_view object)> on_object;
  std::function<void(ApiResponse end)> on_end;
};

class ApiCall;

// Destroying the handle cancels the exchange (its callback is then never called). Handles may be
// destroyed from inside their own callbacks.
class ApiCallHandle {
 public:
  ApiCallHandle();
  explicit ApiCallHandle(std::unique_ptr<ApiCall> call);
  ~ApiCallHandle();
  ApiCallHandle(ApiCallHandle&&) noexcept;
  ApiCallHandle& operator=(ApiCallHandle&&) noexcept;
  void reset();
  bool active() const;

 private:
  std::unique_ptr<ApiCall> call_;
};

class ApiClient {
 public:
  // nullptr and `error` when the TLS settings cannot work (unreadable CA, bad client key, ...).
  static std::unique_ptr<ApiClient> create(net::EventLoop& loop, const KubeConfig& config,
                                           std::string* error);
  ~ApiClient();

  ApiCallHandle request(ApiRequest request, std::function<void(ApiResponse)> done);
  ApiCallHandle stream(ApiRequest request, StreamHandlers handlers);

  net::EventLoop& loop() { return loop_; }
  const KubeConfig& config() const { return config_; }
  TokenSource& tokens() { return tokens_; }
  uint64_t requests_started() const { return requests_started_; }

 private:
  friend class ApiCall;
  ApiClient(net::EventLoop& loop, const KubeConfig& config);
  std::string build_request(const ApiRequest& request);

  net::EventLoop& loop_;
  KubeConfig config_;
  TokenSource tokens_;
  std::shared_ptr<const net::TlsClientContext> tls_;
  uint64_t requests_started_ = 0;
};

}  // namespace proxenos::k8s
