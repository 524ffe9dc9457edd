#pragma once
// Shared helpers for the HTTP/2 codec tests: a recording handler, a server and a client session
// wired back to back in memory, and a raw-frame builder (with a tiny HPACK literal encoder) to
// speak to a server session byte by byte.

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/http2_session.h"

namespace proxenos::http::h2test {

using Fields = std::vector<std::pair<std::string, std::string>>;

inline Fields to_fields(const HeaderList& list) {
  Fields out;
  for (const HeaderField& f : list) out.emplace_back(std::string(f.name), std::string(f.value));
  return out;
}

// Owns strings for a HeaderList (the codec takes views).
struct OwnedHeaders {
  explicit OwnedHeaders(Fields f) : fields(std::move(f)) {
    for (const auto& [n, v] : fields) list.push_back({n, v});
  }
  OwnedHeaders(std::initializer_list<std::pair<std::string, std::string>> f)
      : OwnedHeaders(Fields(f)) {}
  OwnedHeaders(const OwnedHeaders&) = delete;
  OwnedHeaders& operator=(const OwnedHeaders&) = delete;
  Fields fields;
  HeaderList list;
};

struct StreamLog {
  bool has_request = false;
  RequestHead request;
  bool request_end = false;
  std::vector<ResponseHead> responses;
  bool response_end = false;
  std::string body;
  int data_calls = 0;
  bool body_end = false;
  bool has_trailers = false;
  Fields trailers;
  bool reset_received = false;
  uint32_t reset_code = 0;
  bool closed = false;
  uint32_t close_code = 0;
};

// What on_request_rejected reported, copied out of the views.
struct Rejection {
  int32_t stream = 0;
  std::string method;
  std::string target;
  std::string path;
  std::string authority;
  Fields headers;
  std::string reason;
};

class RecordingHandler : public Http2Session::Handler {
 public:
  void on_request_rejected(int32_t stream, const RequestHead& partial,
                           std::string_view reason) override {
    rejections.push_back({stream, std::string(partial.method), std::string(partial.target),
                          std::string(partial.path), std::string(partial.authority),
                          to_fields(partial.headers), std::string(reason)});
  }
  void on_request_head(int32_t stream, RequestHead&& head, bool end_stream) override {
    StreamLog& s = streams[stream];
    s.has_request = true;
    s.request = std::move(head);
    s.request_end = end_stream;
    if (on_request) on_request(stream, s.request, end_stream);
  }
  void on_response_head(int32_t stream, ResponseHead&& head, bool end_stream) override {
    StreamLog& s = streams[stream];
    s.responses.push_back(std::move(head));
    s.response_end = end_stream;
  }
  void on_data(int32_t stream, std::string_view bytes, bool end_stream) override {
    StreamLog& s = streams[stream];
    s.body.append(bytes);
    ++s.data_calls;
    if (end_stream) s.body_end = true;
    if (auto_consume && !bytes.empty()) session->consume(stream, bytes.size());
    if (on_body) on_body(stream, bytes, end_stream);
  }
  void on_trailers(int32_t stream, const HeaderList& trailers) override {
    StreamLog& s = streams[stream];
    s.has_trailers = true;
    s.trailers = to_fields(trailers);
  }
  void on_stream_reset(int32_t stream, uint32_t code) override {
    StreamLog& s = streams[stream];
    s.reset_received = true;
    s.reset_code = code;
  }
  void on_stream_close(int32_t stream, uint32_t code) override {
    StreamLog& s = streams[stream];
    s.closed = true;
    s.close_code = code;
    ++closes;
  }
  void on_goaway(int32_t last_stream_id, uint32_t code) override {
    ++goaways;
    goaway_last = last_stream_id;
    goaway_code = code;
  }
  void on_send_ready(int32_t stream) override {
    ready.push_back(stream);
    if (on_ready) on_ready(stream);
  }

  Http2Session* session = nullptr;
  bool auto_consume = true;
  std::map<int32_t, StreamLog> streams;
  std::vector<Rejection> rejections;
  std::function<void(int32_t, const RequestHead&, bool)> on_request;
  std::function<void(int32_t, std::string_view, bool)> on_body;
  std::function<void(int32_t)> on_ready;
  std::vector<int32_t> ready;
  int closes = 0;
  int goaways = 0;
  int32_t goaway_last = -1;
  uint32_t goaway_code = 0;
};

// A server and a client session connected in memory.
struct Pair {
  explicit Pair(const Http2Options& server_options = {}, const Http2Options& client_options = {})
      : server(Http2Session::Role::kServer, server_handler, server_options),
        client(Http2Session::Role::kClient, client_handler, client_options) {
    server_handler.session = &server;
    client_handler.session = &client;
  }

  // Moves bytes both ways until neither side has anything to say.
  void pump(int max_rounds = 100000) {
    for (int i = 0; i < max_rounds; ++i) {
      bool moved = false;
      std::string_view c = client.pending_output();
      if (!c.empty()) {
        moved = true;
        client_bytes += c.size();
        if (server_ok) server_ok = server.feed(c);
        client.consume_output(c.size());
      }
      std::string_view s = server.pending_output();
      if (!s.empty()) {
        moved = true;
        server_bytes += s.size();
        if (client_ok) client_ok = client.feed(s);
        server.consume_output(s.size());
      }
      if (!moved) return;
    }
  }

  RecordingHandler server_handler;
  RecordingHandler client_handler;
  Http2Session server;
  Http2Session client;
  bool server_ok = true;
  bool client_ok = true;
  size_t client_bytes = 0;
  size_t server_bytes = 0;
};

inline Http2Request get_request(std::string_view path, const HeaderList* headers = nullptr,
                                std::string_view method = "GET") {
  Http2Request r;
  r.method = method;
  r.scheme = "http";
  r.authority = "example.com";
  r.path = path;
  r.headers = headers;
  return r;
}

// --- Raw frames -------------------------------------------------------------------------------

enum FrameType : uint8_t {
  kData = 0x0,
  kHeaders = 0x1,
  kPriority = 0x2,
  kRstStream = 0x3,
  kSettings = 0x4,
  kPushPromise = 0x5,
  kPing = 0x6,
  kGoaway = 0x7,
  kWindowUpdate = 0x8,
  kContinuation = 0x9,
};
enum FrameFlag : uint8_t {
  kEndStream = 0x1,
  kAck = 0x1,
  kEndHeaders = 0x4,
  kPadded = 0x8,
  kPriorityFlag = 0x20,
};

inline void put32(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>(v >> 24));
  out.push_back(static_cast<char>(v >> 16));
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v));
}

inline std::string frame(uint8_t type, uint8_t flags, uint32_t stream, std::string_view payload) {
  std::string f;
  const size_t n = payload.size();
  f.push_back(static_cast<char>(n >> 16));
  f.push_back(static_cast<char>(n >> 8));
  f.push_back(static_cast<char>(n));
  f.push_back(static_cast<char>(type));
  f.push_back(static_cast<char>(flags));
  put32(f, stream & 0x7fffffff);
  f.append(payload);
  return f;
}

inline std::string settings(const std::vector<std::pair<uint16_t, uint32_t>>& entries) {
  std::string p;
  for (auto [id, v] : entries) {
    p.push_back(static_cast<char>(id >> 8));
    p.push_back(static_cast<char>(id));
    put32(p, v);
  }
  return frame(kSettings, 0, 0, p);
}
inline std::string settings_ack() {
  return frame(kSettings, kAck, 0, "");
}
inline std::string rst_stream(uint32_t stream, uint32_t code) {
  std::string p;
  put32(p, code);
  return frame(kRstStream, 0, stream, p);
}
inline std::string window_update(uint32_t stream, uint32_t inc) {
  std::string p;
  put32(p, inc);
  return frame(kWindowUpdate, 0, stream, p);
}
inline std::string ping(uint64_t data = 0) {
  std::string p;
  put32(p, static_cast<uint32_t>(data >> 32));
  put32(p, static_cast<uint32_t>(data));
  return frame(kPing, 0, 0, p);
}
inline std::string priority(uint32_t stream, uint32_t depends_on) {
  std::string p;
  put32(p, depends_on);
  p.push_back(15);
  return frame(kPriority, 0, stream, p);
}

// HPACK (RFC 7541) pieces: integers, literal fields (never Huffman), indexed fields.
inline void hpack_int(std::string& out, uint8_t flags, int prefix_bits, uint64_t v) {
  const uint64_t max = (uint64_t{1} << prefix_bits) - 1;
  if (v < max) {
    out.push_back(static_cast<char>(flags | v));
    return;
  }
  out.push_back(static_cast<char>(flags | max));
  v -= max;
  while (v >= 128) {
    out.push_back(static_cast<char>((v % 128) | 0x80));
    v /= 128;
  }
  out.push_back(static_cast<char>(v));
}
inline void hpack_string(std::string& out, std::string_view s) {
  hpack_int(out, 0x00, 7, s.size());
  out.append(s);
}
// Literal Header Field without Indexing, new name.
inline std::string lit(std::string_view name, std::string_view value) {
  std::string out(1, '\0');
  hpack_string(out, name);
  hpack_string(out, value);
  return out;
}
// Literal Header Field with Incremental Indexing, new name (enters the dynamic table).
inline std::string lit_indexed(std::string_view name, std::string_view value) {
  std::string out(1, '\x40');
  hpack_string(out, name);
  hpack_string(out, value);
  return out;
}
inline std::string indexed(uint64_t index) {
  std::string out;
  hpack_int(out, 0x80, 7, index);
  return out;
}
inline std::string block(const Fields& fields) {
  std::string out;
  for (const auto& [n, v] : fields) out += lit(n, v);
  return out;
}
inline Fields get_fields(std::string path = "/") {
  return {{":method", "GET"},
          {":scheme", "http"},
          {":path", std::move(path)},
          {":authority", "example.com"}};
}
inline std::string headers_frame(uint32_t stream, const Fields& fields, bool end_stream = true) {
  return frame(kHeaders, kEndHeaders | (end_stream ? kEndStream : 0), stream, block(fields));
}

struct Frame {
  uint8_t type = 0;
  uint8_t flags = 0;
  uint32_t stream = 0;
  std::string payload;
  uint32_t u32(size_t at = 0) const {
    auto b = [&](size_t i) {
      return static_cast<uint32_t>(static_cast<unsigned char>(payload[i]));
    };
    return (b(at) << 24) | (b(at + 1) << 16) | (b(at + 2) << 8) | b(at + 3);
  }
  uint32_t rst_code() const { return u32(0); }
  uint32_t goaway_last() const { return u32(0) & 0x7fffffff; }
  uint32_t goaway_code() const { return u32(4); }
};

inline std::vector<Frame> parse_frames(std::string_view bytes) {
  std::vector<Frame> out;
  while (bytes.size() >= 9) {
    auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(bytes[i])); };
    const size_t len = (b(0) << 16) | (b(1) << 8) | b(2);
    if (bytes.size() < 9 + len) break;
    Frame f;
    f.type = static_cast<uint8_t>(b(3));
    f.flags = static_cast<uint8_t>(b(4));
    f.stream = ((b(5) << 24) | (b(6) << 16) | (b(7) << 8) | b(8)) & 0x7fffffff;
    f.payload = std::string(bytes.substr(9, len));
    out.push_back(std::move(f));
    bytes.remove_prefix(9 + len);
  }
  return out;
}

// A server session driven by hand-built frames, as a hostile client would.
struct RawServer {
  explicit RawServer(const Http2Options& options = {}, bool ack_settings = true)
      : session(Http2Session::Role::kServer, handler, options) {
    handler.session = &session;
    std::string hello(kHttp2Preface);
    hello += settings({});
    if (ack_settings) hello += settings_ack();
    send(hello);
  }
  // Feeds bytes and collects what the server answers. Returns feed()'s result.
  bool send(std::string_view bytes, bool drain_output = true) {
    alive = session.feed(bytes) && alive;
    if (drain_output) drain();
    return alive;
  }
  void drain() {
    for (;;) {
      std::string_view out = session.pending_output();
      if (out.empty()) break;
      wire.append(out);
      session.consume_output(out.size());
    }
    std::vector<Frame> frames = parse_frames(std::string_view(wire).substr(parsed_bytes));
    for (Frame& f : frames) {
      parsed_bytes += 9 + f.payload.size();
      received.push_back(std::move(f));
    }
  }
  const Frame* find(uint8_t type, int32_t stream = -1) const {
    for (const Frame& f : received) {
      if (f.type == type && (stream < 0 || f.stream == static_cast<uint32_t>(stream))) return &f;
    }
    return nullptr;
  }
  size_t count(uint8_t type) const {
    size_t n = 0;
    for (const Frame& f : received) n += f.type == type ? 1 : 0;
    return n;
  }
  size_t data_bytes(uint32_t stream) const {
    size_t n = 0;
    for (const Frame& f : received)
      n += (f.type == kData && f.stream == stream) ? f.payload.size() : 0;
    return n;
  }

  RecordingHandler handler;
  Http2Session session;
  bool alive = true;
  std::string wire;
  size_t parsed_bytes = 0;
  std::vector<Frame> received;
};

}  // namespace proxenos::http::h2test
