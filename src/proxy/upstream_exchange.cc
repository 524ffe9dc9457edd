#include "proxy/upstream_exchange.h"

#include "http/body_decoder.h"

namespace proxenos::proxy {
namespace {

constexpr std::string_view kTransportFailure = "connection failure, transport failure reason: ";

bool is_tls_failure(std::string_view reason) {
  return reason.rfind("TLS", 0) == 0;
}

void start_upstream_clock(Exchange& e, net::EventLoop& loop) {
  e.upstream_start_ms = loop.now_ms();
  e.upstream_start_us = loop.now_us();
}

}  // namespace

UpstreamConnect connect_upstream(Exchange& e, net::EventLoop& loop,
                                 upstream::UpstreamConnection::Handler* handler,
                                 UpstreamFailure& failure) {
  start_upstream_clock(e, loop);
  e.upstream = e.retried ? nullptr : e.cluster->take_idle();
  if (e.upstream) {
    e.upstream->set_handler(handler);
    e.upstream->requests++;
    e.upstream_host = e.upstream->endpoint_text();
    return UpstreamConnect::kReused;
  }
  const net::Address* endpoint = e.cluster->pick_endpoint();
  if (endpoint == nullptr) {
    failure.body = "no healthy upstream";
    failure.flags = "UH";
    return UpstreamConnect::kFailed;
  }
  int err = 0;
  e.upstream = e.cluster->connect(*endpoint, &err);
  if (!e.upstream) {
    e.upstream_host = endpoint->to_string();
    e.cluster->stats().upstream_cx_connect_fail.inc();
    failure.body = std::string(kResetBeforeHeaders) + "connection failure";
    failure.flags = "UF";
    return UpstreamConnect::kFailed;
  }
  e.upstream_host = e.upstream->endpoint_text();
  e.upstream->set_handler(handler);
  e.upstream->requests++;
  return UpstreamConnect::kConnecting;
}

upstream::Http2Upstream* acquire_h2_upstream(Exchange& e, net::EventLoop& loop,
                                             const upstream::Http2Upstream* avoid,
                                             UpstreamFailure& failure) {
  start_upstream_clock(e, loop);
  std::string error;
  upstream::Http2Upstream* h2 = upstream::Http2Upstream::acquire(*e.cluster, error, avoid);
  if (h2 == nullptr) {
    if (error == "no healthy upstream") {
      failure.body = error;
      failure.flags = "UH";
    } else {
      failure.body = std::string(kResetBeforeHeaders) + error;
      failure.flags = "UF";
    }
    return nullptr;
  }
  e.upstream_host = h2->endpoint_text();
  return h2;
}

http::Http2Request h2_request(const Exchange& e, std::string_view authority, std::string_view path,
                              const http::HeaderList& fields, size_t in_h2_form) {
  http::Http2Request request;
  request.method = e.request.method;
  request.scheme = e.cluster->spec().tls ? "https" : "http";
  request.authority = authority;
  request.path = path;
  request.headers = &fields;
  request.headers_in_h2_form = in_h2_form;
  return request;
}

void keep_h2_request_trailers(Exchange& e, const http::HeaderList& trailers) {
  e.h2_request_trailers.clear();
  e.h2_trailer_text.clear();
  size_t bytes = 0;
  for (const http::HeaderField& f : trailers) bytes += f.name.size() + f.value.size();
  e.h2_trailer_text.reserve(bytes);  // the views below must not move
  for (const http::HeaderField& f : trailers) {
    if (!http::forwardable_trailer(f.name)) continue;
    const size_t at = e.h2_trailer_text.size();
    e.h2_trailer_text.append(f.name).append(f.value);
    const std::string_view text = e.h2_trailer_text;
    e.h2_request_trailers.push_back(
        {text.substr(at, f.name.size()), text.substr(at + f.name.size(), f.value.size())});
  }
}

void keep_h2_request_trailers(Exchange& e, std::string_view section) {
  http::HeaderList fields;
  while (!section.empty()) {
    const size_t eol = section.find("\r\n");
    const std::string_view line = section.substr(0, eol);
    section.remove_prefix(eol == std::string_view::npos ? section.size() : eol + 2);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;  // the final empty line
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
      value.remove_prefix(1);
    }
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    fields.push_back({line.substr(0, colon), value});
  }
  keep_h2_request_trailers(e, fields);
}

http::SubmitResult h2_send_request_end(Exchange& e, upstream::Http2Upstream& h2, int32_t stream,
                                       std::string_view body) {
  if (e.h2_request_trailers.empty()) return h2.submit_data(stream, body, true);
  http::SubmitResult r = http::SubmitResult::kOk;
  if (!body.empty()) r = h2.submit_data(stream, body, false);
  if (r == http::SubmitResult::kClosed) return r;
  return h2.submit_trailers(stream, e.h2_request_trailers) ? r : http::SubmitResult::kClosed;
}

const http::HeaderList& deadline_exceeded_trailers() {
  static const http::HeaderList kTrailers = {{"grpc-status", "4"},
                                             {"grpc-message", "upstream request timeout"}};
  return kTrailers;
}

bool keep_for_replay(Exchange& e, std::string_view data) {
  constexpr size_t kMaxReplayBody = 64 * 1024;
  if (e.h2_replay_body.size() + data.size() > kMaxReplayBody) {
    e.h2_replay_body.clear();
    return false;
  }
  e.h2_replay_body.append(data);
  return true;
}

std::string connect_failure_body(Exchange& e, std::string_view reason) {
  std::string body(kResetBeforeHeaders);
  if (is_tls_failure(reason)) {
    e.transport_failure.assign(reason);
    body.append(kTransportFailure);
  }
  body.append(reason);
  return body;
}

std::string unconnected_failure_reason(Exchange& e) {
  e.cluster->stats().upstream_cx_connect_fail.inc();
  const std::string& failure = e.upstream->failure();
  if (is_tls_failure(failure)) {
    e.transport_failure = failure;
    return std::string(kTransportFailure) + failure;
  }
  return failure.empty() ? std::string("connection failure") : failure;
}

}  // namespace proxenos::proxy
