#pragma once
// A mirrored copy of a request (Mapping `shadow: true`), sent to the shadow cluster with
// `-shadow` appended to its Host, as Envoy's request mirroring does. Its response is read and
// thrown away.
//
// The client's exchange feeds it the request body piece by piece as the body streams to the real
// upstream, and never waits for it: a shadow that falls more than kShadowMaxPending bytes behind,
// fails or times out is abandoned, which only its cluster's counters show. It outlives the
// exchange that started it (the worker owns it) until its own response is done.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "http/body_decoder.h"
#include "http/http1_parser.h"
#include "http/message_head.h"
#include "net/event_loop.h"
#include "upstream/upstream_connection.h"
#include "upstream/worker_cluster.h"

namespace proxenos::proxy {

class Worker;

// Request bytes a shadow may hold unsent before it is abandoned.
inline constexpr size_t kShadowMaxPending = 256 * 1024;

class ShadowRequest final : public upstream::UpstreamConnection::Handler {
 public:
  // `upstream_head` is the head sent to the real upstream; the copy goes to `cluster`. Returns
  // null when the shadow cannot even start (no endpoint, socket failure): counted, not reported.
  static ShadowRequest* start(Worker& worker, std::shared_ptr<upstream::WorkerCluster> cluster,
                              std::string_view upstream_head, bool chunked, bool body_complete,
                              uint32_t timeout_ms);
  ~ShadowRequest();

  // Body bytes (decoded: without the client's chunk framing) and the body's end, with the
  // request's chunked trailer section (field lines and final CRLF) when the client sent
  // trailers; they go out only when the copy is chunked.
  void feed(std::string_view data);
  void end_body(std::string_view trailer_section = {});
  // The exchange will feed no more. A shadow whose body is incomplete is abandoned.
  void detach();

  void on_upstream_event(uint32_t events) override;
  void on_upstream_connected() override;

 private:
  ShadowRequest(Worker& worker, std::shared_ptr<upstream::WorkerCluster> cluster, bool chunked,
                bool body_complete);
  void append(std::string_view data);
  void flush();
  void read();
  void on_timeout();
  // Ends the shadow: keeps the connection when it is clean, otherwise closes it.
  void finish(bool reusable);
  void abandon() { finish(false); }

  Worker& worker_;
  std::shared_ptr<upstream::WorkerCluster> cluster_;
  std::unique_ptr<upstream::UpstreamConnection> upstream_;
  std::string out_;
  size_t out_sent_ = 0;
  std::string in_;
  http::ResponseParser parser_;
  http::ResponseHead response_;
  http::BodyDecoder body_;
  net::Timer timer_;
  uint64_t start_us_ = 0;
  bool chunked_ = false;
  bool body_complete_ = false;
  bool head_seen_ = false;
  bool finished_ = false;
  bool detached_ = false;
};

}  // namespace proxenos::proxy
