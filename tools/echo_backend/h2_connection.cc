#include "h2_connection.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "echo_response.h"
#include "grpc_stream.h"

namespace proxenos::echo {

namespace {

constexpr size_t kMaxQueuedOutput = 256 * 1024;  // produce no more frames beyond this
constexpr int32_t kStreamWindow = 1024 * 1024;
constexpr int32_t kConnectionWindow = 16 * 1024 * 1024;

bool truthy(std::string_view v) {
  return v == "1" || http::iequals(v, "true") || http::iequals(v, "yes") || http::iequals(v, "on");
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + ('a' - 'A'));
  }
  return out;
}

std::vector<nghttp2_nv> to_nv(const FieldList& fields) {
  std::vector<nghttp2_nv> nv;
  nv.reserve(fields.size());
  for (const auto& [name, value] : fields) {
    nv.push_back({const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(name.data())),
                  const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(value.data())), name.size(),
                  value.size(), NGHTTP2_NV_FLAG_NONE});
  }
  return nv;
}

bool is_grpc(std::string_view content_type) {
  constexpr std::string_view kGrpc = "application/grpc";
  if (content_type.size() < kGrpc.size() ||
      !http::iequals(content_type.substr(0, kGrpc.size()), kGrpc)) {
    return false;
  }
  // application/grpc, application/grpc+proto, application/grpc;...: but not application/grpc-web,
  // which reaching the backend means the proxy did not translate it (the JSON echo shows that).
  return content_type.size() == kGrpc.size() || content_type[kGrpc.size()] == '+' ||
         content_type[kGrpc.size()] == ';';
}

// An ordinary request: the JSON echo of the HTTP/1 backend, with the same x-echo-* controls
// (x-echo-chunked has no meaning here; x-echo-close sends GOAWAY after the response; x-echo-reset
// is answered with RST_STREAM by the connection; x-echo-partial sends half the body, then
// RST_STREAM INTERNAL_ERROR).
class EchoStream final : public H2Stream {
 public:
  EchoStream(H2Connection& connection, int32_t id, H2Request request)
      : H2Stream(connection, id, std::move(request)),
        timer_(connection.loop(), [this] { on_timer(); }) {}
  ~EchoStream() override {
    if (sha_ != nullptr) EVP_MD_CTX_free(sha_);
  }

  void start() override {
    controls_ = parse_controls(request_.headers);
    hashing_ = !controls_.has_response_bytes && controls_.error.empty();
    if (hashing_) {
      sha_ = EVP_MD_CTX_new();
      if (sha_ == nullptr || EVP_DigestInit_ex(sha_, EVP_sha256(), nullptr) != 1) hashing_ = false;
    }
  }

  void on_data(const uint8_t* data, size_t length) override {
    body_length_ += length;
    if (hashing_) EVP_DigestUpdate(sha_, data, length);
    connection_.consume(id_, length);
  }

  void on_end_stream() override {
    if (hashing_ && body_length_ > 0) {
      unsigned char digest[EVP_MAX_MD_SIZE];
      unsigned int len = 0;
      EVP_DigestFinal_ex(sha_, digest, &len);
      static constexpr char kHex[] = "0123456789abcdef";
      sha_hex_.clear();
      for (unsigned int i = 0; i < std::min(len, 32u); ++i) {
        sha_hex_.push_back(kHex[digest[i] >> 4]);
        sha_hex_.push_back(kHex[digest[i] & 0xF]);
      }
    }
    if (controls_.delay_ms > 0) {
      timer_.arm(controls_.delay_ms);
      return;
    }
    respond();
  }

  ssize_t read_body(uint8_t* buf, size_t length, uint32_t* flags) override {
    uint64_t left = send_limit_ - sent_;
    if (left == 0) {
      if (partial_) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // RST_STREAM
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      return 0;
    }
    size_t n = static_cast<size_t>(std::min<uint64_t>(left, length));
    if (pattern_) {
      std::memset(buf, 'a', n);
    } else {
      std::memcpy(buf, body_.data() + sent_, n);
    }
    sent_ += n;
    if (sent_ == send_limit_ && !partial_) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }

 private:
  void on_timer() {
    respond();
    connection_.kick();
  }

  void respond() {
    const EchoControls& c = controls_;
    FieldList fields;
    uint64_t body_len = 0;
    bool no_body = false;
    if (!c.error.empty()) {
      body_ = std::string(c.error) + "\n";
      body_len = body_.size();
      fields.emplace_back(":status", "400");
      fields.emplace_back("content-type", "text/plain");
      fields.emplace_back("content-length", std::to_string(body_len));
    } else {
      no_body = c.status == 204 || c.status == 304;
      pattern_ = c.has_response_bytes;
      if (pattern_) {
        body_len = c.response_bytes;
      } else {
        http::RequestHead head;
        head.method = request_.method;
        head.target = request_.path;
        head.authority = request_.authority;
        head.headers = request_.headers;
        RequestInfo info;
        info.backend = connection_.server().name();
        info.head = &head;
        info.body_length = body_length_;
        info.body_sha256 = sha_hex_;
        info.remote_address = connection_.remote();
        info.protocol = "HTTP/2";
        info.scheme = request_.scheme;
        info.tls = connection_.tls_info();
        append_request_json(body_, info);
        body_len = body_.size();
      }
      partial_ = c.partial && !no_body && request_.method != "HEAD";
      fields.emplace_back(":status", std::to_string(c.status));
      fields.emplace_back("content-type",
                          pattern_ ? "application/octet-stream" : "application/json");
      if (!no_body) {
        fields.emplace_back("content-length",
                            std::to_string(partial_ ? std::max<uint64_t>(body_len, 1) : body_len));
      }
      for (const auto& h : request_.headers) {
        if (h.name.size() > kResponseHeaderPrefix.size() &&
            http::iequals(h.name.substr(0, kResponseHeaderPrefix.size()), kResponseHeaderPrefix)) {
          fields.emplace_back(lower(h.name.substr(kResponseHeaderPrefix.size())), h.value);
        }
      }
      if (c.close) connection_.goaway_after_current();
    }
    bool head_only = request_.method == "HEAD";
    send_limit_ = (head_only || no_body) ? 0 : partial_ ? body_len / 2 : body_len;
    connection_.submit_response(*this, fields, send_limit_ > 0 || partial_);
  }

  net::Timer timer_;
  EchoControls controls_;
  uint64_t body_length_ = 0;
  bool hashing_ = false;
  EVP_MD_CTX* sha_ = nullptr;
  std::string sha_hex_{kEmptySha256};
  std::string body_;  // JSON or error text
  bool pattern_ = false;
  bool partial_ = false;
  uint64_t send_limit_ = 0;
  uint64_t sent_ = 0;
};

}  // namespace

void H2Request::finish() {
  headers.clear();
  headers.reserve(fields.size());
  for (const auto& [name, value] : fields) headers.push_back({name, value});
}

H2Connection::H2Connection(EchoServer& server, Transport transport, std::string remote)
    : SwitchedConnection(server, std::move(transport), std::move(remote)) {
  nghttp2_session_callbacks* callbacks = nullptr;
  nghttp2_session_callbacks_new(&callbacks);
  nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
  nghttp2_option* option = nullptr;
  nghttp2_option_new(&option);
  nghttp2_option_set_no_auto_window_update(option, 1);
  nghttp2_session_server_new2(&session_, callbacks, this, option);
  nghttp2_option_del(option);
  nghttp2_session_callbacks_del(callbacks);
}

H2Connection::~H2Connection() {
  streams_.clear();  // stream timers go before the session they point into
  if (session_ != nullptr) nghttp2_session_del(session_);
}

void H2Connection::start(std::string_view initial_input) {
  register_io();
  if (session_ == nullptr) {
    abort_now();
    return;
  }
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, server_.options().h2_max_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kStreamWindow)},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
  if (!initial_input.empty()) {
    ssize_t r = nghttp2_session_mem_recv(
        session_, reinterpret_cast<const uint8_t*>(initial_input.data()), initial_input.size());
    if (r < 0) {
      abort_now();
      return;
    }
  }
  drive();
}

void H2Connection::on_ready() {
  drive();
}

void H2Connection::on_closing() {
  streams_.clear();
  credit_waiters_.clear();
}

void H2Connection::kick() {
  if (kick_scheduled_ || closed_) return;
  kick_scheduled_ = true;
  loop_.defer([this] {
    kick_scheduled_ = false;
    if (!closed_) drive();
  });
}

void H2Connection::drive() {
  if (in_drive_ || closed_) return;
  in_drive_ = true;
  for (;;) {
    bool reading = readable_ && pending() < kMaxQueuedOutput;
    if (reading && !read_input()) return;  // closed (in_drive_ no longer matters)
    release_credit();
    int more = produce();
    if (more < 0) return;
    if (!flush()) return;
    if (pending() > 0) break;  // socket full: EPOLLOUT resumes us
    if (more == 0 && !readable_) break;
  }
  in_drive_ = false;
  if (peer_eof_) {
    close_now();
    return;
  }
  if (pending() == 0 && nghttp2_session_want_read(session_) == 0 &&
      nghttp2_session_want_write(session_) == 0) {
    begin_linger();
  }
}

bool H2Connection::read_input() {
  while (readable_ && pending() < kMaxQueuedOutput) {
    char* data = nullptr;
    ssize_t n = read_some(&data);
    if (n < 0) return false;
    if (n == 0) return true;
    ssize_t r = nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(data),
                                         static_cast<size_t>(n));
    if (r < 0) {
      abort_now();
      return false;
    }
    // Answers produced while reading (SETTINGS/PING acks, responses) go out between reads.
    if (produce() < 0) return false;
  }
  return true;
}

int H2Connection::produce() {
  while (pending() < kMaxQueuedOutput) {
    const uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) {
      abort_now();
      return -1;
    }
    if (n == 0) return 0;
    out_.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  }
  return 1;
}

void H2Connection::release_credit() {
  if (orphan_credit_ > 0) {
    nghttp2_session_consume_connection(session_, orphan_credit_);
    orphan_credit_ = 0;
  }
  if (credit_waiters_.empty()) return;
  std::vector<int32_t> still;
  for (int32_t id : credit_waiters_) {
    H2Stream* s = find(id);
    if (s != nullptr && s->release_credit() > 0) still.push_back(id);
  }
  credit_waiters_.swap(still);
}

void H2Connection::hold_credit(int32_t id) {
  credit_waiters_.push_back(id);
}

void H2Connection::goaway_after_current() {
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
}

void H2Connection::submit_response(H2Stream& stream, const FieldList& headers, bool with_body) {
  std::vector<nghttp2_nv> nv = to_nv(headers);
  if (!with_body) {
    nghttp2_submit_response(session_, stream.id(), nv.data(), nv.size(), nullptr);
    return;
  }
  nghttp2_data_provider provider{};
  provider.source.ptr = &stream;
  provider.read_callback = read_callback;
  nghttp2_submit_response(session_, stream.id(), nv.data(), nv.size(), &provider);
}

void H2Connection::submit_trailers(int32_t id, const FieldList& trailers) {
  std::vector<nghttp2_nv> nv = to_nv(trailers);
  nghttp2_submit_trailer(session_, id, nv.data(), nv.size());
}

H2Stream* H2Connection::find(int32_t id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

H2Stream* H2Connection::open_stream(int32_t id) {
  H2Request request = std::move(building_);
  building_ = {};
  building_id_ = -1;
  request.finish();
  bool found = false;
  std::string_view reset = request.header("x-echo-reset", &found);
  if (found && truthy(reset)) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
    return nullptr;
  }
  std::unique_ptr<H2Stream> stream;
  if (is_grpc(request.header("content-type"))) {
    stream = std::make_unique<GrpcStream>(*this, id, std::move(request));
  } else {
    stream = std::make_unique<EchoStream>(*this, id, std::move(request));
  }
  H2Stream* raw = stream.get();
  streams_[id] = std::move(stream);
  raw->start();
  return raw;
}

int H2Connection::on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<H2Connection*>(user);
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    self->building_ = {};
    self->building_id_ = frame->hd.stream_id;
  }
  return 0;
}

int H2Connection::on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                            size_t name_len, const uint8_t* value, size_t value_len,
                            uint8_t /*flags*/, void* user) {
  auto* self = static_cast<H2Connection*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST ||
      frame->hd.stream_id != self->building_id_) {
    return 0;  // trailers: not echoed
  }
  std::string_view n(reinterpret_cast<const char*>(name), name_len);
  std::string_view v(reinterpret_cast<const char*>(value), value_len);
  H2Request& r = self->building_;
  if (!n.empty() && n[0] == ':') {
    if (n == ":method") r.method = v;
    if (n == ":path") r.path = v;
    if (n == ":authority") r.authority = v;
    if (n == ":scheme") r.scheme = v;
    return 0;
  }
  r.fields.emplace_back(n, v);
  return 0;
}

int H2Connection::on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<H2Connection*>(user);
  int32_t id = frame->hd.stream_id;
  H2Stream* stream = nullptr;
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
      if (frame->headers.cat == NGHTTP2_HCAT_REQUEST && id == self->building_id_) {
        stream = self->open_stream(id);
      } else {
        stream = self->find(id);
      }
      break;
    case NGHTTP2_DATA:
      stream = self->find(id);
      break;
    default:
      return 0;
  }
  if (stream != nullptr && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) stream->on_end_stream();
  return 0;
}

int H2Connection::on_data_chunk(nghttp2_session* session, uint8_t /*flags*/, int32_t id,
                                const uint8_t* data, size_t length, void* user) {
  auto* self = static_cast<H2Connection*>(user);
  H2Stream* stream = self->find(id);
  if (stream == nullptr) {
    nghttp2_session_consume(session, id, length);  // e.g. a stream we reset: keep the window
    return 0;
  }
  stream->on_data(data, length);
  return 0;
}

int H2Connection::on_stream_close(nghttp2_session*, int32_t id, uint32_t /*error_code*/,
                                  void* user) {
  auto* self = static_cast<H2Connection*>(user);
  if (id == self->building_id_) self->building_id_ = -1;
  auto it = self->streams_.find(id);
  if (it == self->streams_.end()) return 0;
  // The stream's own window goes with it; the connection's must get the held bytes back.
  self->orphan_credit_ += it->second->held_credit();
  self->streams_.erase(it);
  return 0;
}

ssize_t H2Connection::read_callback(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                                    uint32_t* flags, nghttp2_data_source* source, void*) {
  return static_cast<H2Stream*>(source->ptr)->read_body(buf, length, flags);
}

}  // namespace proxenos::echo
