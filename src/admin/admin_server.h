#pragma once
// The admin listener (loopback by default): Emissary's health paths and /metrics. Runs on the
// control thread's loop; nothing here is on a request's path.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "net/address.h"
#include "net/event_loop.h"

namespace proxenos::admin {

struct AdminResponse {
  int status = 200;
  std::string content_type = "text/plain";
  std::string body;
};

// Handlers get the request path (without query) and answer synchronously.
using AdminHandler = std::function<AdminResponse(const std::string& path)>;

// The request as a handler that needs its query sees it (`/ambassador/v0/diag/?json=true`).
struct AdminRequest {
  std::string path;   // without query
  std::string query;  // text after '?', without the '?'; empty when none
};
using AdminRequestHandler = std::function<AdminResponse(const AdminRequest& request)>;

class AdminServer final : public net::IoHandler {
 public:
  AdminServer(net::EventLoop& loop, AdminHandler handler);
  AdminServer(net::EventLoop& loop, AdminRequestHandler handler);
  ~AdminServer();

  bool listen(const net::Address& address, std::string* error);
  void on_io(uint32_t events) override;
  net::Address bound_address() const;

 private:
  class Session;
  void accept_all();
  void close_session(Session* session);

  net::EventLoop& loop_;
  AdminRequestHandler handler_;
  int fd_ = -1;
  std::vector<std::unique_ptr<Session>> sessions_;
};

}  // namespace proxenos::admin
