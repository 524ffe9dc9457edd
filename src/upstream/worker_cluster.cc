#include "upstream/worker_cluster.h"

#include <cerrno>

#include <algorithm>

#include "net/socket.h"
#include "upstream/http2_upstream.h"

namespace proxenos::upstream {

namespace {
// How many idle connections a worker keeps per cluster; beyond this they are closed on release.
constexpr size_t kMaxIdlePerCluster = 256;

// Emissary exports cluster stats under the Mapping's stats_name (Envoy's alt_stat_name).
std::string stats_label(const ClusterSpec& spec) {
  return spec.stats_name.empty() ? spec.name : spec.stats_name;
}
}  // namespace

WorkerCluster::WorkerCluster(net::EventLoop& loop, ClusterSpec spec)
    : loop_(loop),
      spec_(std::move(spec)),
      idle_timer_(loop, [this] { expire_idle(); }),
      stats_(std::make_shared<observe::ClusterStats>(stats_label(spec_))) {}

WorkerCluster::~WorkerCluster() {
  http2_.clear();
  close_idle();
}

void WorkerCluster::update_spec(const ClusterSpec& spec) {
  if (!spec_.same_upstream(spec)) close_idle();
  spec_ = spec;
  // A shard's name is fixed (scrapes read it without a lock): a new stats name is a new shard.
  if (stats_->name != stats_label(spec_)) {
    stats_ = std::make_shared<observe::ClusterStats>(stats_label(spec_));
  }
}

void WorkerCluster::set_endpoints(std::vector<net::Address> endpoints) {
  endpoints_ = std::move(endpoints);
  if (next_endpoint_ >= endpoints_.size()) next_endpoint_ = 0;
  // Pooled connections to endpoints that left the set (a pod went away, DNS moved) must not
  // keep taking requests.
  auto listed = [this](const std::string& text) {
    for (const net::Address& a : endpoints_) {
      if (a.to_string() == text) return true;
    }
    return false;
  };
  std::vector<Http2Upstream*> gone;
  for (auto& c : http2_) {
    if (!listed(c->endpoint_text())) gone.push_back(c.get());
  }
  for (Http2Upstream* c : gone) c->drain();
  std::erase_if(idle_, [&](std::unique_ptr<UpstreamConnection>& c) {
    if (listed(c->endpoint().to_string())) return false;
    c->in_pool_ = false;
    UpstreamConnection::destroy(std::move(c));
    return true;
  });
}

const net::Address* WorkerCluster::pick_endpoint() {
  if (endpoints_.empty()) return nullptr;
  const net::Address* a = &endpoints_[next_endpoint_];
  next_endpoint_ = (next_endpoint_ + 1) % endpoints_.size();
  return a;
}

std::unique_ptr<UpstreamConnection> WorkerCluster::take_idle() {
  uint64_t now = loop_.now_ms();
  while (!idle_.empty()) {
    auto c = std::move(idle_.back());
    idle_.pop_back();
    c->in_pool_ = false;
    bool expired = spec_.max_connection_lifetime_ms != 0 &&
                   now - c->created_ms >= spec_.max_connection_lifetime_ms;
    if (!expired) return c;
    UpstreamConnection::destroy(std::move(c));
  }
  return nullptr;
}

std::unique_ptr<UpstreamConnection> WorkerCluster::connect(const net::Address& endpoint,
                                                           int* error_number) {
  int fd = net::connect_tcp(endpoint, error_number);
  if (fd < 0) return nullptr;
  stats_->upstream_cx_total.inc();
  auto connection = std::make_unique<UpstreamConnection>(loop_, fd, this, endpoint);
  connection->count_in(stats_);
  if (spec_.tls) {
    std::string error;
    std::unique_ptr<net::TlsStream> tls;
    if (tls_) {
      // SNI: the TLSContext's `sni`, else the service's host name.
      std::string_view sni =
          spec_.tls_settings.sni.empty() ? std::string_view(spec_.host) : std::string_view();
      tls = net::TlsStream::client(tls_, fd, &error, sni);
    }
    if (!tls) {
      // No usable TLS context (reported when the configuration was applied): never speak
      // cleartext to a TLS upstream.
      UpstreamConnection::destroy(std::move(connection));
      if (error_number != nullptr) *error_number = EPROTO;
      return nullptr;
    }
    connection->set_tls(std::move(tls));
  }
  return connection;
}

void WorkerCluster::release(std::unique_ptr<UpstreamConnection> connection) {
  if (idle_.size() >= kMaxIdlePerCluster) {
    UpstreamConnection::destroy(std::move(connection));
    return;
  }
  connection->set_handler(nullptr);
  connection->in_pool_ = true;
  connection->idle_since_ms = loop_.now_ms();
  idle_.push_back(std::move(connection));
  if (!idle_timer_.armed()) idle_timer_.arm(std::min<uint64_t>(spec_.idle_timeout_ms, 60000));
}

void WorkerCluster::drop_idle(UpstreamConnection* connection) {
  auto it = std::find_if(idle_.begin(), idle_.end(),
                         [connection](const auto& c) { return c.get() == connection; });
  if (it == idle_.end()) return;
  auto c = std::move(*it);
  idle_.erase(it);
  UpstreamConnection::destroy(std::move(c));
}

void WorkerCluster::close_idle() {
  // HTTP/2 connections close once their streams are done (draining removes them from http2_).
  std::vector<Http2Upstream*> http2;
  for (auto& c : http2_) http2.push_back(c.get());
  for (Http2Upstream* c : http2) c->drain();
  for (auto& c : idle_) UpstreamConnection::destroy(std::move(c));
  idle_.clear();
}

void WorkerCluster::expire_idle() {
  uint64_t now = loop_.now_ms();
  // idle_ is ordered oldest first (LIFO reuse takes from the back), so expired ones are a prefix.
  size_t expired = 0;
  while (expired < idle_.size() && now - idle_[expired]->idle_since_ms >= spec_.idle_timeout_ms) {
    UpstreamConnection::destroy(std::move(idle_[expired]));
    ++expired;
  }
  idle_.erase(idle_.begin(), idle_.begin() + static_cast<long>(expired));
  if (!idle_.empty()) {
    uint64_t next = idle_.front()->idle_since_ms + spec_.idle_timeout_ms - now;
    idle_timer_.arm(std::max<uint64_t>(next, 1));
  }
}

}  // namespace proxenos::upstream
