#pragma once
// The state of one request/response exchange on a downstream connection. Pooled per worker
// thread and reused, so its strings and vectors keep their capacity and a request allocates
// nothing once the pool is warm.

#include <cstdint>
#include <memory>
#include <string>

#include "http/body_decoder.h"
#include "http/http1_parser.h"
#include "http/message_head.h"
#include "net/buffer.h"
#include "net/event_loop.h"
#include "proxy/request_context.h"
#include "proxy/worker.h"
#include "router/route_table.h"
#include "upstream/upstream_connection.h"

namespace proxenos::proxy {

class ShadowRequest;

struct Exchange {
  explicit Exchange(net::EventLoop& loop);
  ~Exchange();
  void reset();
  void drop_shadow();  // tells the shadow (if any) that no more body will come from here

  std::shared_ptr<const WorkerConfig> config;
  const config::ListenerSnapshot* listener = nullptr;
  http::RequestParser parser;  // scan progress of the head being received
  http::RequestHead request;
  router::RouteTable::Match match;
  upstream::WorkerCluster* cluster = nullptr;
  std::unique_ptr<upstream::UpstreamConnection> upstream;
  ShadowRequest* shadow = nullptr;  // owned by the worker; fed the body as it streams
  std::unique_ptr<net::Buffer> up_in;
  std::unique_ptr<net::Buffer> up_out;
  http::BodyDecoder request_body;
  http::BodyDecoder response_body;
  http::ResponseParser response_parser;
  http::ResponseHead response;

  bool request_complete = false;    // whole request body received from downstream
  bool request_sent = false;        // whole request written to the upstream socket buffer
  bool response_head_sent = false;  // we started answering downstream
  bool response_complete = false;
  bool response_chunked = false;      // we re-chunk the body towards downstream
  bool response_until_close = false;  // downstream body delimited by our close
  bool upstream_reusable = false;
  bool retried = false;
  bool secure = false;  // request judged secure (TLS or trusted x-forwarded-proto: https)
  bool head_request = false;
  bool upgrade = false;  // the route allows the client's Upgrade: the request asks for a tunnel
  bool tunnel = false;   // the upstream answered 101: bytes pass both ways until a side closes
  uint32_t stream_idle_ms = 0;  // no bytes either way for this long ends the exchange (0 = off)
  bool grpc = false;            // content-type application/grpc[+...] (HTTP/1.1 connections)
  bool grpc_web = false;        // ... or gRPC-Web with the Module's enable_grpc_web (likewise)
  bool cors_preflight = false;  // a CORS preflight answered here (no gRPC-style answer for it)
  // CORS fields for whatever response this exchange gets (views into the route's policy and the
  // request head), or the preflight answer's.
  http::HeaderList cors_fields;
  // Scratch for HTTP/2 streams: the response fields being submitted and the upstream request's.
  http::HeaderList h2_response_fields;
  http::HeaderList h2_request_fields;
  // Request trailers kept for an HTTP/2 upstream until the body before them has gone (views into
  // h2_trailer_text).
  http::HeaderList h2_request_trailers;
  std::string h2_trailer_text;
  // Body bytes submitted to an HTTP/2 upstream before its response head, for a REFUSED_STREAM
  // replay; here rather than in the stream so that its capacity is reused.
  std::string h2_replay_body;

  uint64_t start_ms = 0;
  uint64_t start_us = 0;  // the same instants in microseconds, for the latency histograms
  uint64_t upstream_start_us = 0;
  observe::RouteStats* route_stats = nullptr;  // held alive by `config`
  bool counted_active = false;                 // in the listener's downstream_rq_active
  bool counted_upgrade = false;                // in the listener's downstream_cx_upgrades_active
  bool cluster_active = false;                 // in the cluster's upstream_rq_active
  int64_t start_unix_ms = 0;
  uint64_t upstream_start_ms = 0;
  int64_t upstream_service_ms = -1;
  uint64_t bytes_received = 0;  // body bytes from downstream
  uint64_t bytes_sent = 0;      // body bytes to downstream
  int status = 0;
  std::string_view flags = "-";

  std::string client_address;  // trusted client address, ip only
  std::string request_id;
  std::string original_path;  // set when the path was rewritten
  std::string up_head;        // serialized upstream request head (kept for one retry), or only the
                              // parts an HTTP/2-only head assembled (see up_head_index)
  UpstreamHeadIndex up_head_index;  // where its parts are, for an HTTP/2 upstream
  std::string request_trailers;     // the chunked request's trailer section, as it is decoded
  std::string upstream_host;        // "ip:port" of the chosen endpoint
  std::string upstream_local;       // "ip:port" of our end of the upstream connection
  std::string transport_failure;    // why connecting upstream failed (TLS errors), for the log
  std::string xfcc;                 // x-forwarded-client-cert value we send, when we set one
  std::string scratch;
  RequestContext context;  // views into this exchange and its connection; set when routed

  net::Timer route_timer;
  net::Timer connect_timer;
  net::Timer idle_timer;      // route idle_timeout_ms: no bytes either way for that long
  net::Timer deadline_timer;  // grpc-timeout of a gRPC call (HTTP/1.1 connections)
  uint64_t last_activity_ms = 0;
  void* owner = nullptr;  // the HttpConnection using this exchange (timers call back into it)
};

}  // namespace proxenos::proxy
