#include "fake_kube_api.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>

namespace proxenos::k8s::testing {

FakeKubeApi::FakeKubeApi(std::vector<std::string> args) {
  int fds[2];
  if (pipe(fds) != 0) return;
  std::string script = std::string(PROXENOS_SOURCE_DIR) + "/tests/e2e/fake_kube_api.py";
  pid_ = fork();
  if (pid_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // no orphan server when a test crashes
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    std::vector<std::string> argv_s = {"/usr/bin/python3", script, "--port", "0"};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(fds[1]);
  FILE* out = fdopen(fds[0], "r");
  char line[64] = {};
  if (out != nullptr && fgets(line, sizeof line, out) != nullptr) {
    sscanf(line, "PORT %d", &port_);
  }
  if (out != nullptr) fclose(out);
}

FakeKubeApi::~FakeKubeApi() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

std::string FakeKubeApi::url() const {
  return "http://127.0.0.1:" + std::to_string(port_);
}

namespace {

FakeKubeApi::HttpResult blocking_exchange(int port, const std::string& request) {
  FakeKubeApi::HttpResult result;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    close(fd);
    return result;
  }
  (void)!write(fd, request.data(), request.size());
  std::string response;
  char buf[4096];
  // The fake answers with Content-Length; read until we have the whole body.
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    response.append(buf, static_cast<size_t>(n));
    size_t head_end = response.find("\r\n\r\n");
    if (head_end == std::string::npos) continue;
    size_t cl = response.find("Content-Length: ");
    if (cl == std::string::npos || cl > head_end) continue;
    size_t length = std::stoul(response.substr(cl + 16));
    if (response.size() >= head_end + 4 + length) {
      if (response.compare(0, 9, "HTTP/1.1 ") == 0 || response.compare(0, 9, "HTTP/1.0 ") == 0) {
        result.status = std::atoi(response.c_str() + 9);
      }
      result.body = response.substr(head_end + 4, length);
      break;
    }
  }
  close(fd);
  return result;
}

std::string blocking_http(int port, const std::string& request) {
  return blocking_exchange(port, request).body;
}

}  // namespace

std::string FakeKubeApi::control(const std::string& what, const std::string& json) {
  return blocking_http(port_, "POST /fake/" + what + " HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                                  std::to_string(json.size()) + "\r\nConnection: close\r\n\r\n" +
                                  json);
}

std::string FakeKubeApi::get(const std::string& path) {
  return blocking_http(port_, "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
}

std::string FakeKubeApi::apply_mapping(const std::string& ns, const std::string& name,
                                       const std::string& prefix) {
  return control("apply",
                 R"({"group":"getambassador.io","version":"v3alpha1","resource":"mappings",)"
                 R"("kind":"Mapping","object":{"metadata":{"name":")" +
                     name + R"(","namespace":")" + ns + R"("},"spec":{"prefix":")" + prefix +
                     R"(","service":"svc"}}})");
}

std::string FakeKubeApi::delete_mapping(const std::string& ns, const std::string& name) {
  return control("delete",
                 R"({"group":"getambassador.io","version":"v3alpha1","resource":"mappings",)"
                 R"("namespace":")" +
                     ns + R"(","name":")" + name + R"("})");
}

FakeKubeApi::HttpResult FakeKubeApi::request(const std::string& method, const std::string& path,
                                             const std::string& body,
                                             const std::string& content_type) {
  std::string head = method + " " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n";
  if (!body.empty() || method != "GET") {
    head += "Content-Type: " + content_type + "\r\nContent-Length: " + std::to_string(body.size()) +
            "\r\n";
  }
  return blocking_exchange(port_, head + "\r\n" + body);
}

std::string FakeKubeApi::object(const std::string& group, const std::string& version,
                                const std::string& resource, const std::string& ns,
                                const std::string& name) {
  HttpResult r = request("GET", "/fake/object?group=" + group + "&version=" + version +
                                    "&resource=" + resource + "&namespace=" + ns + "&name=" + name);
  return r.status == 200 ? r.body : "";
}

LoopThread::LoopThread() {
  thread_ = std::thread([this] {
    loop_.run();
    loop_.run_deferred();
  });
}

LoopThread::~LoopThread() {
  stop();
}

void LoopThread::stop() {
  if (stopped_) return;
  stopped_ = true;
  loop_.stop();
  thread_.join();
}

void LoopThread::call(const std::function<void()>& f) {
  if (std::this_thread::get_id() == thread_.get_id()) {  // from a wait_for() predicate
    f();
    return;
  }
  std::promise<void> done;
  loop_.post([&] {
    loop_.refresh_now();
    f();
    done.set_value();
  });
  done.get_future().wait();
}

bool LoopThread::wait_for(const std::function<bool()>& done, uint64_t timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    bool ok = false;
    call([&] { ok = done(); });
    if (ok) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace proxenos::k8s::testing
