#include "admin/admin_server.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "http/http1_parser.h"
#include "http/status.h"
#include "net/socket.h"

namespace proxenos::admin {

namespace {
constexpr size_t kMaxAdminRequest = 16 * 1024;
constexpr uint64_t kAdminIdleMs = 30000;
}  // namespace

class AdminServer::Session final : public net::IoHandler {
 public:
  Session(AdminServer& server, int fd)
      : server_(server), fd_(fd), timer_(server.loop_, [this] { server_.close_session(this); }) {
    http::ParserLimits limits;
    limits.allow_http10 = true;
    limits.underscores = http::UnderscoreAction::kAllow;
    parser_.set_limits(limits);
    server_.loop_.add(fd_, EPOLLIN | EPOLLOUT | EPOLLRDHUP, this);
    timer_.arm(kAdminIdleMs);
  }
  ~Session() {
    if (fd_ >= 0) {
      server_.loop_.remove(fd_);
      close(fd_);
    }
  }

  void on_io(uint32_t events) override {
    if (dead_) return;
    if (events & EPOLLERR) return finish();
    if (events & EPOLLOUT) flush();
    if (dead_) return;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) read();
  }

 private:
  void finish() {
    dead_ = true;
    server_.close_session(this);
  }
  void read() {
    char buf[4096];
    for (;;) {
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n > 0) {
        in_.append(buf, static_cast<size_t>(n));
        if (in_.size() > kMaxAdminRequest) return finish();
        continue;
      }
      if (n == 0) {
        eof_ = true;
        break;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return finish();
    }
    while (!dead_) {
      http::ParseResult r = parser_.parse(in_, head_);
      if (r.status == http::ParseStatus::kIncomplete) break;
      if (r.status == http::ParseStatus::kError) {
        respond({r.error_status, "text/plain", std::string(r.error) + "\n"}, true);
        return;
      }
      in_.erase(0, r.consumed);
      parser_.reset();
      AdminResponse resp;
      if (head_.method != "GET" && head_.method != "HEAD") {
        resp = {405, "text/plain", "method not allowed\n"};
      } else {
        resp = server_.handler_(AdminRequest{std::string(head_.path), std::string(head_.query)});
      }
      // HEAD gets the GET's content-length, without the body.
      respond(resp, !head_.keep_alive, head_.method == "HEAD");
    }
    if (eof_ && out_.empty()) finish();
  }
  void respond(const AdminResponse& r, bool close_after, bool head_only = false) {
    out_ += "HTTP/1.1 " + std::to_string(r.status) + " " +
            std::string(http::reason_phrase(r.status)) + "\r\ncontent-type: " + r.content_type +
            "\r\ncontent-length: " + std::to_string(r.body.size()) +
            (close_after ? "\r\nconnection: close" : "") + "\r\n\r\n";
    if (!head_only) out_ += r.body;
    close_after_ = close_after_ || close_after;
    flush();
  }
  void flush() {
    while (!out_.empty()) {
      ssize_t n = send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
      if (n > 0) {
        out_.erase(0, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      return finish();
    }
    if (close_after_ || eof_) finish();
  }

  AdminServer& server_;
  int fd_;
  net::Timer timer_;
  http::RequestParser parser_;
  http::RequestHead head_;
  std::string in_;
  std::string out_;
  bool eof_ = false;
  bool close_after_ = false;
  bool dead_ = false;
};

AdminServer::AdminServer(net::EventLoop& loop, AdminHandler handler)
    : loop_(loop), handler_([handler = std::move(handler)](const AdminRequest& request) {
        return handler(request.path);
      }) {}

AdminServer::AdminServer(net::EventLoop& loop, AdminRequestHandler handler)
    : loop_(loop), handler_(std::move(handler)) {}

AdminServer::~AdminServer() {
  sessions_.clear();
  if (fd_ >= 0) {
    loop_.remove(fd_);
    close(fd_);
  }
}

bool AdminServer::listen(const net::Address& address, std::string* error) {
  fd_ = net::listen_tcp(address, false, 128, error);
  if (fd_ < 0) return false;
  loop_.add(fd_, EPOLLIN, this);
  return true;
}

net::Address AdminServer::bound_address() const {
  return net::local_address(fd_);
}

void AdminServer::on_io(uint32_t) {
  accept_all();
}

void AdminServer::accept_all() {
  for (;;) {
    int fd = accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      return;
    }
    sessions_.push_back(std::make_unique<Session>(*this, fd));
  }
}

void AdminServer::close_session(Session* session) {
  auto it = std::find_if(sessions_.begin(), sessions_.end(),
                         [session](const auto& s) { return s.get() == session; });
  if (it == sessions_.end()) return;
  Session* raw = it->release();
  sessions_.erase(it);
  loop_.defer([raw] { delete raw; });
}

}  // namespace proxenos::admin
