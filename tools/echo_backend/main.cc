// echo-backend: the upstream of every end-to-end test and benchmark.
//
//   echo-backend --listen ADDR:PORT [--name NAME] [--threads N]
//                [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE] [--tls-alpn LIST]]
//                [--h2-max-streams N] [--grpc-echo-metadata on|off]
//
// Prints "listening on ADDR:PORT" (the bound port, so --listen 127.0.0.1:0 works) once every
// worker's listener is bound. Each request is answered, after its whole body was read, with 200
// and a JSON description of the request:
//   {"backend", "method", "path" (target as received), "host", "headers" (lower-case names;
//    a list of values when repeated), "body_length", "body_sha256", "http_version",
//    "remote_address"}
// Request headers steer the answer:
//   x-echo-status: N           status code (200..599)
//   x-echo-delay-ms: N         answer N ms after the body was read
//   x-echo-response-bytes: N   body of N bytes 'a' (application/octet-stream) instead of JSON
//   x-echo-chunked: 1          chunked transfer coding for the response
//   x-echo-header-<Name>: v    response header <Name>: v
//   x-echo-close: 1            connection: close, and close after the response
//   x-echo-reset: 1            RST as soon as the head is read, no response
//   x-echo-partial: 1          head promising more than the half body sent, then RST
// HEAD gets the head only; Expect: 100-continue gets an interim 100; malformed requests get
// 400 (or 414/431/501/505 from the parser) and the connection is closed.
//
// The same port also speaks:
//  - HTTP/2 with prior knowledge (h2c; a connection starting with the preface), and over TLS
//    after ALPN h2: the same JSON plus "protocol": "HTTP/2" and "scheme", "http_version" is
//    "HTTP/2"; the x-echo-* controls apply per stream (x-echo-reset -> RST_STREAM, x-echo-close ->
//    GOAWAY after the response). --h2-max-streams sets SETTINGS_MAX_CONCURRENT_STREAMS (1000).
//  - gRPC (content-type application/grpc over HTTP/2): service echo.Echo, see grpc_stream.h.
//    Its response headers echo the request's as x-echo-*; --grpc-echo-metadata off leaves them
//    out, as a real service would (benchmarks: the answer does not grow with what a proxy adds).
//  - WebSocket (RFC 6455) on any path after an HTTP/1.1 Upgrade: websocket, see ws_connection.h;
//    x-echo-ws-info: 1 makes the first message the JSON of the handshake request. Paths under
//    /no-upgrade/ answer the Upgrade request with the ordinary 200 JSON (no tunnel).
//  - TLS with --tls-cert/--tls-key (ALPN from --tls-alpn, default "h2,http/1.1"; with
//    --tls-client-ca a client certificate signed by that CA is required). The JSON then has
//    "tls": {"version", "sni", "alpn", "client_subject"}.

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "echo_server.h"
#include "net/address.h"
#include "net/event_loop.h"
#include "net/socket.h"
#include "tls.h"

namespace {

struct Options {
  std::string listen;
  std::string name = "echo";
  int threads = 1;
  uint32_t h2_max_streams = 1000;
  bool grpc_echo_metadata = true;
  proxenos::echo::TlsOptions tls;
};

void usage(std::FILE* to) {
  std::fprintf(to,
               "usage: echo-backend --listen ADDR:PORT [--name NAME] [--threads N]\n"
               "         [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]"
               " [--tls-alpn h2,http/1.1]]\n"
               "         [--h2-max-streams N] [--grpc-echo-metadata on|off]\n");
}

bool parse_int(std::string_view value, long min, long max, long* out) {
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), *out);
  return ec == std::errc() && end == value.data() + value.size() && *out >= min && *out <= max;
}

// Accepts "--flag value" and "--flag=value". Returns false (after printing why) on bad input.
bool parse_args(int argc, char** argv, Options* opts) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      usage(stdout);
      std::exit(0);
    }
    std::string_view key = arg;
    std::string_view value;
    bool has_value = false;
    if (auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      key = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_value = true;
    }
    if (key != "--listen" && key != "--name" && key != "--threads" && key != "--tls-cert" &&
        key != "--tls-key" && key != "--tls-client-ca" && key != "--tls-alpn" &&
        key != "--h2-max-streams" && key != "--grpc-echo-metadata") {
      std::fprintf(stderr, "echo-backend: unknown argument %s\n", argv[i]);
      return false;
    }
    if (!has_value) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "echo-backend: %s needs a value\n", argv[i]);
        return false;
      }
      value = argv[++i];
    }
    if (key == "--listen") {
      opts->listen = std::string(value);
    } else if (key == "--name") {
      opts->name = std::string(value);
    } else if (key == "--tls-cert") {
      opts->tls.cert_file = std::string(value);
    } else if (key == "--tls-key") {
      opts->tls.key_file = std::string(value);
    } else if (key == "--tls-client-ca") {
      opts->tls.client_ca_file = std::string(value);
    } else if (key == "--tls-alpn") {
      opts->tls.alpn.clear();
      for (size_t start = 0; start <= value.size();) {
        size_t comma = value.find(',', start);
        if (comma == std::string_view::npos) comma = value.size();
        std::string_view proto = value.substr(start, comma - start);
        if (proto.size() > 255) {
          std::fprintf(stderr, "echo-backend: --tls-alpn protocol name too long\n");
          return false;
        }
        if (!proto.empty()) opts->tls.alpn.emplace_back(proto);
        start = comma + 1;
      }
    } else if (key == "--h2-max-streams") {
      long n = 0;
      if (!parse_int(value, 1, 1L << 31, &n)) {
        std::fprintf(stderr, "echo-backend: --h2-max-streams must be an integer >= 1\n");
        return false;
      }
      opts->h2_max_streams = static_cast<uint32_t>(n);
    } else if (key == "--grpc-echo-metadata") {
      if (value != "on" && value != "off") {
        std::fprintf(stderr, "echo-backend: --grpc-echo-metadata must be on or off\n");
        return false;
      }
      opts->grpc_echo_metadata = value == "on";
    } else {
      long n = 0;
      if (!parse_int(value, 1, 256, &n)) {
        std::fprintf(stderr, "echo-backend: --threads must be an integer in [1, 256]\n");
        return false;
      }
      opts->threads = static_cast<int>(n);
    }
  }
  if (opts->listen.empty()) {
    std::fprintf(stderr, "echo-backend: --listen is required\n");
    return false;
  }
  bool any_tls = !opts->tls.cert_file.empty() || !opts->tls.key_file.empty() ||
                 !opts->tls.client_ca_file.empty();
  if (any_tls && (opts->tls.cert_file.empty() || opts->tls.key_file.empty())) {
    std::fprintf(stderr, "echo-backend: TLS needs both --tls-cert and --tls-key\n");
    return false;
  }
  return true;
}

// SO_REUSEPORT would let a second echo-backend on the same fixed port silently share it with the
// first (tests would then hit a stale process), so probe the port without it first.
bool port_free(const proxenos::net::Address& address, std::string* error) {
  if (address.port() == 0) return true;
  int fd = socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return true;  // let the real bind report the problem
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (address.family() == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  bool ok = bind(fd, address.sa(), address.length) == 0;
  if (!ok) *error = "bind " + address.to_string() + ": " + std::strerror(errno);
  close(fd);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace proxenos;
  Options opts;
  if (!parse_args(argc, argv, &opts)) {
    usage(stderr);
    return 2;
  }
  auto address = net::Address::parse(opts.listen);
  if (!address) {
    std::fprintf(stderr, "echo-backend: --listen %s is not a numeric ADDR:PORT\n",
                 opts.listen.c_str());
    return 2;
  }

  std::unique_ptr<echo::TlsContext> tls;
  if (!opts.tls.cert_file.empty()) {
    std::string error;
    tls = echo::TlsContext::create(opts.tls, &error);
    if (!tls) {
      std::fprintf(stderr, "echo-backend: %s\n", error.c_str());
      return 2;
    }
  }
  echo::EchoOptions echo_options;
  echo_options.tls = tls.get();
  echo_options.h2_max_streams = opts.h2_max_streams;
  echo_options.grpc_echo_metadata = opts.grpc_echo_metadata;

  // Workers inherit this mask; the main thread takes the signals with sigwait and stops them.
  signal(SIGPIPE, SIG_IGN);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  // Bind every listener before printing, so a client that saw the line can connect to any worker.
  // With port 0 the first bind picks the port and the others join it through SO_REUSEPORT.
  std::vector<int> listeners;
  net::Address bound = *address;
  if (std::string error; !port_free(bound, &error)) {
    std::fprintf(stderr, "echo-backend: %s\n", error.c_str());
    return 1;
  }
  for (int i = 0; i < opts.threads; ++i) {
    std::string error;
    int fd = net::listen_tcp(bound, /*reuse_port=*/true, SOMAXCONN, &error);
    if (fd < 0) {
      std::fprintf(stderr, "echo-backend: %s\n", error.c_str());
      return 1;
    }
    if (i == 0) bound = net::local_address(fd);
    listeners.push_back(fd);
  }
  std::cout << "listening on " << bound.to_string() << std::endl;

  std::vector<std::unique_ptr<net::EventLoop>> loops;
  std::vector<std::thread> workers;
  for (int i = 0; i < opts.threads; ++i) {
    loops.push_back(std::make_unique<net::EventLoop>());
    net::EventLoop* loop = loops.back().get();
    int fd = listeners[static_cast<size_t>(i)];
    workers.emplace_back([loop, fd, name = opts.name, echo_options] {
      echo::EchoServer server(*loop, fd, name, echo_options);
      loop->run();
    });
  }

  int sig = 0;
  sigwait(&stop_signals, &sig);
  for (auto& loop : loops) loop->stop();
  for (auto& t : workers) t.join();
  return 0;
}
