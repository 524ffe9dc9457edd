#include "proxy/upstream_exchange.h"

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
                              const http::HeaderList& fields) {
  http::Http2Request request;
  request.method = e.request.method;
  request.scheme = e.cluster->spec().tls ? "https" : "http";
  request.authority = authority;
  request.path = path;
  request.headers = &fields;
  return request;
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
