// libFuzzer target for the HTTP/2 codec. The input is one option byte, then what a client sends
// after the connection preface and an (empty) SETTINGS frame. A handler that behaves like a busy
// proxy answers, streams bodies, sends trailers, resets and consumes, so the session's own paths
// run as well as nghttp2's. With option bit 6 the same bytes are also fed to a client session as
// if an upstream sent them. Besides memory errors and leaks (ASan/LSan) it traps on broken
// invariants: a stream closed twice or never opened, callbacks after close, head views outside
// their storage, counters that disagree, a dead session that still reads.
//
// Option byte: bits 0-1 feed chunking (whole, 1, 7, 100 bytes); bit 2 never drain the output
// (a peer that does not read); bit 3 small limits; bit 4 never consume; bit 5 extended CONNECT;
// bit 6 client-role pass; bit 7 large response bodies.

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "http/http2_session.h"

namespace {

using proxenos::http::HeaderField;
using proxenos::http::HeaderList;
using proxenos::http::Http2Options;
using proxenos::http::Http2Request;
using proxenos::http::Http2Session;
using proxenos::http::RequestHead;
using proxenos::http::ResponseHead;
using proxenos::http::SubmitResult;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

void check_inside(std::string_view v, const std::string& storage) {
  if (v.empty()) return;
  const bool in_storage =
      v.data() >= storage.data() && v.data() + v.size() <= storage.data() + storage.size();
  // Only the literal "cookie" name of a joined cookie field lives outside the storage.
  check(in_storage || v == "cookie");
}

class FuzzHandler : public Http2Session::Handler {
 public:
  FuzzHandler(uint8_t options, bool server) : options_(options), server_(server) {}

  void on_request_head(int32_t stream, RequestHead&& head, bool end_stream) override {
    check(server_);
    Stream& s = open(stream);
    RequestHead moved = std::move(head);  // views must survive the move
    for (std::string_view v : {moved.method, moved.target, moved.path, moved.query, moved.authority,
                               moved.upgrade_protocol}) {
      check_inside(v, moved.storage);
    }
    for (const HeaderField& f : moved.headers) {
      check(!f.name.empty() && f.name[0] != ':');
      check_inside(f.name, moved.storage);
      check_inside(f.value, moved.storage);
    }
    check(!moved.method.empty() && !moved.authority.empty());
    s.ended = end_stream;
    // Answer in several ways, picked by the stream id.
    switch ((stream >> 1) % 5) {
      case 0:
        session->submit_response(stream, 200, reply_, end_stream);
        if (!end_stream) s.echo = true;
        break;
      case 1:
        session->submit_response(stream, 200, reply_, false);
        produce(stream);
        break;
      case 2:
        session->reset_stream(stream, proxenos::http::kH2Cancel);
        break;
      case 3:
        session->submit_response(stream, 100, {}, false);
        s.echo = true;
        break;
      default:
        break;  // answered when the request ends
    }
  }

  void on_response_head(int32_t stream, ResponseHead&& head, bool) override {
    check(!server_);
    Stream& s = known(stream);
    check(!s.ended);
    ResponseHead moved = std::move(head);
    check(moved.status >= 100 && moved.status <= 999);
    for (const HeaderField& f : moved.headers) {
      check_inside(f.name, moved.storage);
      check_inside(f.value, moved.storage);
    }
  }

  void on_data(int32_t stream, std::string_view bytes, bool end_stream) override {
    Stream& s = known(stream);
    check(!s.ended);
    s.received += bytes.size();
    if (!(options_ & 0x10) && !bytes.empty()) session->consume(stream, bytes.size());
    if (s.echo && !bytes.empty()) session->submit_data(stream, bytes.substr(0, 64), false);
    if (end_stream) finish(stream, s);
  }

  void on_trailers(int32_t stream, const HeaderList& trailers) override {
    Stream& s = known(stream);
    check(!s.ended);
    for (const HeaderField& f : trailers) check(!f.name.empty());
    finish(stream, s);
  }

  void on_stream_reset(int32_t stream, uint32_t) override { known(stream); }

  void on_stream_close(int32_t stream, uint32_t) override {
    Stream& s = known(stream);
    s.closed = true;
    ++closed;
  }

  void on_goaway(int32_t, uint32_t) override {}

  void on_send_ready(int32_t stream) override {
    // Streams may be gone by the time the send pass reports: that must be harmless.
    auto it = streams.find(stream);
    if (it != streams.end() && !it->second.closed) produce(stream);
  }

  void opened_by_us(int32_t stream) { open(stream); }

  struct Stream {
    bool closed = false;
    bool ended = false;
    bool echo = false;
    uint64_t received = 0;
    size_t produced = 0;
  };
  std::map<int32_t, Stream> streams;
  size_t closed = 0;
  Http2Session* session = nullptr;

 private:
  Stream& open(int32_t stream) {
    check(stream > 0);
    check(streams.find(stream) == streams.end());  // a stream is opened once
    return streams[stream];
  }
  Stream& known(int32_t stream) {
    auto it = streams.find(stream);
    check(it != streams.end() && !it->second.closed);  // nothing after close
    return it->second;
  }

  void finish(int32_t stream, Stream& s) {
    s.ended = true;
    if (!server_) return;
    if ((stream >> 1) % 5 == 4) {
      session->submit_response(stream, 200, reply_, false);
      session->submit_trailers(stream, trailers_);
    } else if (s.echo) {
      session->submit_trailers(stream, trailers_);
    }
  }

  void produce(int32_t stream) {
    Stream& s = streams[stream];
    const size_t total = (options_ & 0x80) ? 300 * 1024 : 3000;
    const std::string chunk(1000, 'x');
    SubmitResult r = SubmitResult::kOk;
    while (r == SubmitResult::kOk && s.produced < total) {
      s.produced += chunk.size();
      r = session->submit_data(stream, chunk, s.produced >= total);
    }
  }

  uint8_t options_;
  bool server_;
  HeaderField reply_fields_[2] = {{"content-type", "text/plain"}, {"x-reply", "1"}};
  HeaderList reply_ = {reply_fields_[0], reply_fields_[1]};
  HeaderList trailers_ = {{"grpc-status", "0"}};
};

Http2Options options_for(uint8_t o) {
  Http2Options opts;
  if (o & 0x08) {
    opts.max_concurrent_streams = 2;
    opts.max_header_list_bytes = 512;
    opts.max_header_count = 8;
    opts.stream_send_buffer = 1024;
    opts.output_buffer_limit = 256;
    opts.premature_reset_total_streams = 10;
    opts.max_outbound_control_frames = 20;
    opts.max_outbound_frames = 50;
  }
  opts.enable_connect_protocol = (o & 0x20) != 0;
  return opts;
}

// Feeds `in` in chunks, draining the output unless the peer "does not read". Returns when the
// session stops reading.
void run(Http2Session& session, FuzzHandler& handler, std::string_view in, uint8_t o) {
  static constexpr size_t kChunk[] = {0, 1, 7, 100};
  const size_t step = kChunk[o & 3] == 0 ? (in.empty() ? 1 : in.size()) : kChunk[o & 3];
  const bool drain = (o & 0x04) == 0;
  bool alive = true;
  for (size_t off = 0; off < in.size() && alive; off += step) {
    alive = session.feed(in.substr(off, step));
    if (!alive) check(!session.want_read());
    for (int i = 0; drain && i < 64; ++i) {
      std::string_view out = session.pending_output();
      if (out.empty()) break;
      session.consume_output(out.size());
    }
    size_t open = 0;
    for (const auto& [id, s] : handler.streams) open += s.closed ? 0 : 1;
    check(open == session.open_streams());
  }
  if (!alive) check(!session.feed("x"));
  // Whatever state it is in, the session can be flushed and torn down.
  session.pending_output();
  session.connection_closed();
  check(session.open_streams() == 0);
  for (const auto& [id, s] : handler.streams) check(s.closed);
  check(handler.closed == handler.streams.size());
  const auto& st = session.stats();
  check(st.too_many_premature_resets <= 1);
  check(st.premature_resets <= st.streams_opened);
  check(st.streams_refused <= st.streams_opened);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t o = data[0];
  const std::string_view frames(reinterpret_cast<const char*>(data + 1), size - 1);
  const Http2Options opts = options_for(o);

  {
    FuzzHandler handler(o, /*server=*/true);
    Http2Session server(Http2Session::Role::kServer, handler, opts);
    handler.session = &server;
    std::string in(proxenos::http::kHttp2Preface);
    in.append("\0\0\0\x04\0\0\0\0\0", 9);  // SETTINGS, empty
    in.append(frames);
    run(server, handler, in, o);
  }

  if (o & 0x40) {
    FuzzHandler handler(o, /*server=*/false);
    Http2Session client(Http2Session::Role::kClient, handler, opts);
    handler.session = &client;
    HeaderField f[] = {{"content-type", "application/grpc"}, {"te", "trailers"}};
    const HeaderList headers = {f[0], f[1]};
    Http2Request r;
    r.method = "POST";
    r.authority = "upstream";
    r.path = "/pkg.Svc/Method";
    r.headers = &headers;
    for (int i = 0; i < 3; ++i) {
      const int32_t id = client.submit_request(r, i == 2);
      check(id == 1 + 2 * i);
      handler.opened_by_us(id);
      if (i < 2) client.submit_data(id, std::string_view("\0\0\0\0\x01x", 6), i == 0);
    }
    std::string in("\0\0\0\x04\0\0\0\0\0", 9);
    in.append(frames);
    run(client, handler, in, o);
  }
  return 0;
}
