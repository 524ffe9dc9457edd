#include "k8s/api_client.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "http/body_decoder.h"
#include "http/header.h"
#include "http/http1_parser.h"
#include "k8s/json_stream.h"
#include "net/address.h"
#include "net/socket.h"
#include "net/stream_io.h"
#include "net/tls_stream.h"

namespace proxenos::k8s {

// One exchange on its own connection.
class ApiCall final : public net::IoHandler {
 public:
  ApiCall(ApiClient& client, ApiRequest request, bool streaming)
      : client_(client),
        loop_(client.loop_),
        streaming_(streaming),
        timer_(client.loop_, [this] { fail("timed out"); }),
        request_(std::move(request)) {}
  ~ApiCall() {
    *alive_ = false;
    close_connection();
  }

  // Ends the exchange without calling back. The object itself is freed later (deferred): the
  // loop may still hold an event for it in the batch being dispatched.
  void cancel() {
    *alive_ = false;
    finished_ = true;
    timer_.cancel();
    close_connection();
  }
  net::EventLoop& loop() { return loop_; }

  void start(std::function<void(ApiResponse)> done, StreamHandlers handlers) {
    done_ = std::move(done);
    handlers_ = std::move(handlers);
    out_ = client_.build_request(request_);
    timer_.arm(request_.timeout_ms);
    // Reported from the loop, never from inside request()/stream(): callers may not expect a
    // callback before they even hold the handle.
    std::weak_ptr<bool> alive = alive_;
    loop_.defer([this, alive] {
      if (auto a = alive.lock(); a && *a) connect();
    });
  }

  bool active() const { return !finished_; }

  void on_io(uint32_t events) override {
    if (finished_) return;
    if (!tcp_connected_) {
      // Reading SO_ERROR clears it: read it once.
      const int error = net::socket_error(fd_);
      if ((events & (EPOLLERR | EPOLLHUP)) || error != 0) {
        fail("cannot connect to " + client_.config_.authority() + ": " +
             std::strerror(error != 0 ? error : ECONNREFUSED));
        return;
      }
      if (!(events & EPOLLOUT)) return;
      tcp_connected_ = true;
    }
    if (tls_ && !tls_->handshake_done()) {
      net::TlsResult r = tls_->handshake();
      if (r.status == net::TlsIo::kWantRead || r.status == net::TlsIo::kWantWrite) return;
      if (r.status != net::TlsIo::kOk) {
        fail("TLS handshake with " + client_.config_.authority() + " failed: " + tls_->error());
        return;
      }
    }
    if (!flush()) return;
    read_available();
  }

 private:
  void connect() {
    const KubeConfig& c = client_.config_;
    std::string error;
    std::optional<net::Address> addr = net::Address::parse(c.host, c.port);
    if (!addr) {
      std::vector<net::Address> found = net::resolve(c.host, c.port, true, true, &error);
      if (found.empty()) {
        fail("cannot resolve " + c.host + ": " + error);
        return;
      }
      addr = found.front();
    }
    int err = 0;
    fd_ = net::connect_tcp(*addr, &err);
    if (fd_ < 0) {
      fail("cannot connect to " + addr->to_string() + ": " + std::strerror(err));
      return;
    }
    if (client_.tls_) {
      tls_ = net::TlsStream::client(client_.tls_, fd_, &error,
                                    c.tls_server_name.empty() ? c.host : c.tls_server_name);
      if (!tls_) {
        fail("TLS: " + error);
        return;
      }
    }
    loop_.add(fd_, EPOLLIN | EPOLLOUT | EPOLLRDHUP, this);
  }

  net::StreamIo io() const { return net::StreamIo{fd_, tls_.get()}; }

  // Sends what is left of the request; false when the call ended.
  bool flush() {
    while (written_ < out_.size()) {
      ssize_t n = io().write(out_.data() + written_, out_.size() - written_);
      if (n > 0) {
        written_ += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EAGAIN) return true;
      fail("write failed: " + (tls_ ? io().error() : std::string(std::strerror(errno))));
      return false;
    }
    return true;
  }

  void read_available() {
    auto alive = alive_;
    char chunk[16 * 1024];
    while (!finished_) {
      ssize_t n = io().read(chunk, sizeof chunk);
      if (n > 0) {
        on_bytes(std::string_view(chunk, static_cast<size_t>(n)));
        if (!*alive) return;
        continue;
      }
      if (n == 0) {
        on_eof();
        return;
      }
      if (errno == EAGAIN) return;
      fail("read failed: " + (tls_ ? io().error() : std::string(std::strerror(errno))));
      return;
    }
  }

  void on_bytes(std::string_view bytes) {
    auto alive = alive_;
    in_.append(bytes);
    if (!head_done_) {
      http::ParseResult r = parser_.parse(in_, false, head_);
      if (r.status == http::ParseStatus::kIncomplete) return;
      if (r.status == http::ParseStatus::kError) {
        fail("bad response head: " + std::string(r.error));
        return;
      }
      head_done_ = true;
      response_.status = head_.status;
      response_.content_type = std::string(http::find_header(head_.headers, "content-type"));
      std::string_view retry = http::find_header(head_.headers, "retry-after");
      if (!retry.empty() && retry.size() < 6 &&
          retry.find_first_not_of("0123456789") == std::string_view::npos) {
        response_.retry_after_s = std::stoull(std::string(retry));
      }
      if (head_.status == 401) client_.tokens_.invalidate();
      decoder_.reset(head_.framing, head_.content_length);
      in_.erase(0, r.consumed);
      if (streaming_ && response_.ok()) {
        handlers_.on_open(response_);
        if (!*alive) return;
      }
      if (head_.framing == http::BodyFraming::kNone) {
        complete();
        return;
      }
    }
    std::string_view rest = in_;
    size_t used = 0;
    while (!rest.empty()) {
      http::DecodeResult d = decoder_.decode(rest);
      if (d.error) {
        fail("bad response body: " + std::string(d.reason));
        return;
      }
      used += d.consumed;
      rest.remove_prefix(d.consumed);
      if (!d.data.empty() && !on_body(d.data)) return;
      if (!*alive) return;
      if (d.done) {
        complete();
        return;
      }
      if (d.consumed == 0) break;
    }
    in_.erase(0, used);
  }

  // False when the call ended.
  bool on_body(std::string_view data) {
    if (streaming_ && response_.ok()) {
      objects_.clear();
      if (!splitter_.feed(data, &objects_)) {
        fail("watch stream is not a sequence of JSON objects");
        return false;
      }
      auto alive = alive_;
      for (const std::string& object : objects_) {
        handlers_.on_object(object);
        if (!*alive || finished_) return false;
      }
      return true;
    }
    if (response_.body.size() + data.size() > kMaxResponseBytes) {
      fail("response body too large");
      return false;
    }
    response_.body.append(data);
    return true;
  }

  void on_eof() {
    if (head_done_ && head_.framing == http::BodyFraming::kUntilClose) {
      complete();
      return;
    }
    fail(head_done_ ? "connection closed before the response ended"
                    : "connection closed before a response");
  }

  void complete() {
    if (streaming_ && response_.ok() && splitter_.pending() > 0) {
      fail("watch stream ended inside an object");
      return;
    }
    finish();
  }

  void fail(std::string error) {
    response_.error = std::move(error);
    finish();
  }

  void finish() {
    if (finished_) return;
    finished_ = true;
    timer_.cancel();
    close_connection();
    ApiResponse r = std::move(response_);
    if (streaming_) {
      if (handlers_.on_end) handlers_.on_end(std::move(r));
    } else if (done_) {
      done_(std::move(r));
    }
  }

  void close_connection() {
    tls_.reset();
    if (fd_ >= 0) {
      loop_.remove(fd_);
      ::close(fd_);
      fd_ = -1;
    }
  }

  ApiClient& client_;
  net::EventLoop& loop_;
  bool streaming_;
  net::Timer timer_;
  ApiRequest request_;
  std::function<void(ApiResponse)> done_;
  StreamHandlers handlers_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);

  int fd_ = -1;
  std::unique_ptr<net::TlsStream> tls_;
  bool tcp_connected_ = false;
  std::string out_;
  size_t written_ = 0;
  std::string in_;
  http::ResponseParser parser_;
  http::ResponseHead head_;
  bool head_done_ = false;
  http::BodyDecoder decoder_;
  JsonObjectSplitter splitter_;
  std::vector<std::string> objects_;
  ApiResponse response_;
  bool finished_ = false;
};

ApiCallHandle::ApiCallHandle(std::unique_ptr<ApiCall> call) : call_(std::move(call)) {}
ApiCallHandle::ApiCallHandle() = default;
ApiCallHandle::~ApiCallHandle() {
  reset();
}
ApiCallHandle::ApiCallHandle(ApiCallHandle&&) noexcept = default;
ApiCallHandle& ApiCallHandle::operator=(ApiCallHandle&& other) noexcept {
  if (this != &other) {
    reset();
    call_ = std::move(other.call_);
  }
  return *this;
}
void ApiCallHandle::reset() {
  if (!call_) return;
  call_->cancel();
  ApiCall* call = call_.release();
  call->loop().defer([call] { delete call; });
}
bool ApiCallHandle::active() const {
  return call_ && call_->active();
}

ApiClient::ApiClient(net::EventLoop& loop, const KubeConfig& config)
    : loop_(loop), config_(config), tokens_(config) {}

ApiClient::~ApiClient() = default;

std::unique_ptr<ApiClient> ApiClient::create(net::EventLoop& loop, const KubeConfig& config,
                                             std::string* error) {
  std::unique_ptr<ApiClient> client(new ApiClient(loop, config));
  if (config.tls) {
    std::optional<net::TlsClientSettings> settings = config.tls_settings(error);
    if (!settings) return nullptr;
    client->tls_ = net::TlsClientContext::create(*settings, error);
    if (!client->tls_) return nullptr;
  }
  return client;
}

std::string ApiClient::build_request(const ApiRequest& request) {
  ++requests_started_;
  std::string out;
  out.reserve(256 + request.path.size() + request.body.size());
  out += request.method;
  out += ' ';
  out += config_.path_prefix;
  out += request.path;
  out += " HTTP/1.1\r\nHost: ";
  out += config_.authority();
  out += "\r\nUser-Agent: proxenos\r\nAccept: application/json\r\nConnection: close\r\n";
  const std::string& token = tokens_.get(static_cast<int64_t>(loop_.now_ms() / 1000));
  if (!token.empty()) {
    out += "Authorization: Bearer ";
    out += token;
    out += "\r\n";
  }
  if (!request.body.empty() || request.method == "PUT" || request.method == "POST" ||
      request.method == "PATCH") {
    if (!request.content_type.empty()) {
      out += "Content-Type: ";
      out += request.content_type;
      out += "\r\n";
    }
    out += "Content-Length: ";
    out += std::to_string(request.body.size());
    out += "\r\n";
  }
  out += "\r\n";
  out += request.body;
  return out;
}

ApiCallHandle ApiClient::request(ApiRequest request, std::function<void(ApiResponse)> done) {
  auto call = std::make_unique<ApiCall>(*this, std::move(request), false);
  call->start(std::move(done), {});
  return ApiCallHandle(std::move(call));
}

ApiCallHandle ApiClient::stream(ApiRequest request, StreamHandlers handlers) {
  auto call = std::make_unique<ApiCall>(*this, std::move(request), true);
  call->start({}, std::move(handlers));
  return ApiCallHandle(std::move(call));
}

}  // namespace proxenos::k8s
