#pragma once
// Runs tests/e2e/fake_kube_api.py as a subprocess and drives it through its /fake/* control API
// with blocking HTTP (only while the test's event loop is not running).

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "net/event_loop.h"

namespace proxenos::k8s::testing {

class FakeKubeApi {
 public:
  // Extra command-line arguments, e.g. {"--token", "t"}.
  explicit FakeKubeApi(std::vector<std::string> args = {});
  ~FakeKubeApi();
  bool ok() const { return port_ > 0; }
  int port() const { return port_; }
  std::string url() const;  // "http://127.0.0.1:PORT"

  // POST /fake/<what> with a JSON body; returns the response body ("" on failure).
  std::string control(const std::string& what, const std::string& json = "{}");
  std::string get(const std::string& path);

  // Any request to the fake (API paths included, so they show up in /fake/requests).
  struct HttpResult {
    int status = 0;  // 0 when the exchange failed
    std::string body;
  };
  HttpResult request(const std::string& method, const std::string& path,
                     const std::string& body = "",
                     const std::string& content_type = "application/json");
  // The stored object via GET /fake/object (not logged, no faults); "" when absent.
  std::string object(const std::string& group, const std::string& version,
                     const std::string& resource, const std::string& ns, const std::string& name);

  // Convenience: a Mapping in getambassador.io/v3alpha1.
  std::string apply_mapping(const std::string& ns, const std::string& name,
                            const std::string& prefix);
  std::string delete_mapping(const std::string& ns, const std::string& name);

 private:
  int pid_ = -1;
  int port_ = 0;
};

// An event loop running on its own thread (EventLoop::run() cannot be restarted after stop()),
// so the test thread can make blocking control calls while the client keeps working. Everything
// that touches loop-owned objects goes through call().
class LoopThread {
 public:
  LoopThread();
  ~LoopThread();
  net::EventLoop& loop() { return loop_; }
  // Runs `f` on the loop thread and waits for it.
  void call(const std::function<void()>& f);
  // Polls `done` on the loop thread until it holds or `timeout_ms` passes.
  bool wait_for(const std::function<bool()>& done, uint64_t timeout_ms = 10'000);
  void stop();  // idempotent; after it, loop-owned objects may be destroyed on any thread

 private:
  net::EventLoop loop_;
  std::thread thread_;
  bool stopped_ = false;
};

}  // namespace proxenos::k8s::testing
