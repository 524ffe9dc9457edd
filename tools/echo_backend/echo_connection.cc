#include "echo_connection.h"

#include <linux/sockios.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>

#include "echo_server.h"
#include "h2_connection.h"
#include "http/header.h"
#include "tls.h"
#include "ws_connection.h"

namespace proxenos::echo {

namespace {

constexpr size_t kPatternSize = 64 * 1024;
constexpr size_t kMaxPatternIov = 16;                          // up to 1 MiB per writev
constexpr uint64_t kMaxPiece = kPatternSize * kMaxPatternIov;  // also the streamed chunk size
constexpr size_t kInlineBodyMax = 16 * 1024;     // smaller bodies are copied, so pipelined
                                                 // answers still leave in one send
constexpr size_t kMaxQueuedOutput = 256 * 1024;  // stop parsing requests beyond this
constexpr size_t kMaxKeptOutputCapacity = 1024 * 1024;
constexpr size_t kMinRead = 4096;
constexpr uint64_t kLingerMs = 2000;
constexpr uint64_t kResetWaitMs = 2000;
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr std::string_view kH2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr std::string_view kNoUpgradePrefix = "/no-upgrade/";

// The response-bytes pattern: 'a' repeated. Constant, so any slice of any length is correct and
// streaming needs no per-connection state beyond a byte count.
const std::array<char, kPatternSize> kPattern = [] {
  std::array<char, kPatternSize> a{};
  a.fill('a');
  return a;
}();

void to_hex(const unsigned char* in, size_t n, char* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[in[i] >> 4];
    out[2 * i + 1] = kHex[in[i] & 0xF];
  }
}

}  // namespace

EchoConnection::EchoConnection(EchoServer& server, int fd, const net::Address& peer,
                               std::unique_ptr<TlsStream> tls)
    : server_(server),
      loop_(server.loop()),
      fd_(fd),
      remote_(peer.to_string()),
      tls_(std::move(tls)),
      timer_(server.loop(), [this] { on_timer(); }),
      parser_(server.limits()) {
  std::copy(kEmptySha256.begin(), kEmptySha256.end(), sha_hex_);
}

EchoConnection::~EchoConnection() {
  if (!closed_) {
    loop_.remove(fd_);
    ::close(fd_);
  }
  if (sha_ != nullptr) EVP_MD_CTX_free(sha_);
  if (in_) server_.pool().give(std::move(in_));
}

void EchoConnection::start() {
  loop_.add(fd_, EPOLLIN | EPOLLOUT | EPOLLRDHUP, this);
}

void EchoConnection::on_io(uint32_t events) {
  if (closed_) return;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable_ = true;
  // TLS may need the other direction to make progress (handshake flights, records buffered
  // inside OpenSSL), so any event is worth a read attempt.
  if (tls_) [[unlikely]] {
    readable_ = true;
  }
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) rdhup_ = true;
  switch (ending_) {
    case Ending::kLinger:
      drain_linger();
      return;
    case Ending::kResetWait:
      if (events & (EPOLLHUP | EPOLLERR)) abort_now();  // peer gone: nothing left to protect
      return;
    case Ending::kNone:
      break;
  }
  drive();
}

bool EchoConnection::paused() const {
  return delay_pending_ || stream_active_ || closing_ || reset_after_output_ ||
         ending_ != Ending::kNone || out_.size() - out_pos_ > kMaxQueuedOutput;
}

void EchoConnection::drive() {
  while (!closed_) {
    if (!paused() && input_pending_) process_buffered();
    if (closed_) return;
    if (!paused() && readable_) read_input();
    if (closed_) return;
    if (!flush()) return;
    // Sending may have finished a stream or drained the queue: go round again if that unblocked
    // queued or unread input.
    if (paused() || (!input_pending_ && !readable_)) break;
  }
  if (!closed_) after_output();
}

void EchoConnection::read_input() {
  while (readable_ && !paused() && !closed_) {
    bool direct = !in_ || in_->empty();
    char* dst;
    size_t cap;
    if (direct) {
      dst = server_.scratch();
      cap = EchoServer::kScratchSize;
    } else {
      in_->ensure_writable(kMinRead);
      dst = in_->write_ptr();
      cap = in_->writable();
    }
    ssize_t n = tls_ ? tls_->read(dst, cap) : recv(fd_, dst, cap, 0);
    if (n > 0) {
      // A short read drained the socket; the next arrival raises a new edge. After RDHUP keep
      // reading so the EOF itself is seen. (TLS reads return a record at a time: only EAGAIN
      // says that side is drained.)
      if (static_cast<size_t>(n) < cap && !rdhup_ && !tls_) readable_ = false;
      if (direct) {
        std::string_view data(dst, static_cast<size_t>(n));
        size_t used = process(data);
        if (closed_) return;
        if (used < data.size()) {
          if (!in_) in_ = server_.pool().take();
          in_->append(data.substr(used));
        }
      } else {
        in_->commit(static_cast<size_t>(n));
        process_buffered();
        if (closed_) return;
      }
      continue;
    }
    if (n == 0) {
      readable_ = false;
      peer_eof_ = true;
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      readable_ = false;
      return;
    }
    if (errno == EPROTO && tls_) {
      close_now();  // TLS failure: the alert is on its way, an RST could overtake it
    } else {
      abort_now();
    }
    return;
  }
}

void EchoConnection::process_buffered() {
  if (!in_) {
    input_pending_ = false;
    return;
  }
  size_t used = process(in_->readable());
  if (closed_) return;
  in_->consume(used);
  if (in_->empty()) server_.pool().give(std::move(in_));
}

size_t EchoConnection::process(std::string_view data) {
  if (fresh_) [[unlikely]] {
    size_t used = 0;
    if (check_preface(data, &used)) return used;
  }
  size_t off = 0;
  while (!paused() && !closed_) {
    if (phase_ == Phase::kHead) {
      if (off == data.size()) break;
      http::ParseResult r = parser_.parse(data.substr(off), head_);
      if (r.status == http::ParseStatus::kIncomplete) break;
      if (r.status == http::ParseStatus::kError) {
        fail(r.error_status != 0 ? r.error_status : 400, r.error);
        off = data.size();
        break;
      }
      off += r.consumed;
      parser_.reset();
      if (head_.upgrade) [[unlikely]] {
        Switch s = maybe_websocket(data.substr(off));
        if (s == Switch::kSwitched) return data.size();
        if (s == Switch::kAnswered) {
          off = data.size();
          break;
        }
      }
      start_request();
      continue;
    }
    http::DecodeResult r = decoder_.decode(data.substr(off));
    off += r.consumed;
    if (!r.data.empty()) on_body(r.data);
    if (r.error) {
      fail(400, r.reason);
      off = data.size();
      break;
    }
    if (r.done || decoder_.done()) {
      end_request();
      continue;
    }
    if (r.consumed == 0 || off == data.size()) break;
  }
  input_pending_ = !closed_ && off < data.size() && paused();
  return off;
}

void EchoConnection::start_request() {
  controls_ = parse_controls(head_.headers);
  body_length_ = 0;
  if (controls_.reset) {
    flush();  // earlier pipelined answers get their chance; this one gets none
    if (!closed_) abort_now();
    return;
  }
  bool has_body = head_.framing == http::BodyFraming::kChunked ||
                  (head_.framing == http::BodyFraming::kContentLength && head_.content_length > 0);
  if (!has_body) {
    end_request();
    return;
  }
  // The hash is only reported in the JSON body, so the benchmark path skips it.
  hashing_ = !controls_.has_response_bytes && controls_.error.empty();
  if (hashing_) {
    if (sha_ == nullptr) sha_ = EVP_MD_CTX_new();
    if (sha_ == nullptr || EVP_DigestInit_ex(sha_, EVP_sha256(), nullptr) != 1) hashing_ = false;
  }
  decoder_.reset(head_.framing, head_.content_length);
  phase_ = Phase::kBody;
  if (head_.expect_continue && head_.version_minor >= 1) out_.append(kContinue);
}

void EchoConnection::on_body(std::string_view data) {
  body_length_ += data.size();
  if (hashing_) EVP_DigestUpdate(sha_, data.data(), data.size());
}

void EchoConnection::end_request() {
  phase_ = Phase::kHead;
  if (hashing_ && body_length_ > 0) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(sha_, digest, &len);
    to_hex(digest, std::min<unsigned int>(len, 32), sha_hex_);
  } else {
    std::copy(kEmptySha256.begin(), kEmptySha256.end(), sha_hex_);
  }
  hashing_ = false;
  if (controls_.delay_ms > 0) {
    delay_pending_ = true;
    timer_mode_ = TimerMode::kDelay;
    timer_.arm(controls_.delay_ms);
    return;
  }
  respond();
}

void EchoConnection::respond() {
  const EchoControls& c = controls_;
  bool http10 = head_.version_minor == 0;
  bool close = !head_.keep_alive || c.close;
  if (!c.error.empty()) {
    append_simple(400, c.error, close);
    closing_ = close;
    return;
  }
  bool head_only = head_.method == "HEAD";
  bool no_body_status = c.status == 204 || c.status == 304;
  bool chunked = c.chunked && !http10 && !no_body_status;
  bool partial = c.partial && !head_only && !no_body_status;
  bool json_body = !c.has_response_bytes;

  std::string& json = server_.json_scratch();
  uint64_t body_len = c.response_bytes;
  if (json_body) {
    json.clear();
    RequestInfo info;
    info.backend = server_.name();
    info.head = &head_;
    info.body_length = body_length_;
    info.body_sha256 = std::string_view(sha_hex_, sizeof sha_hex_);
    info.remote_address = remote_;
    if (tls_) [[unlikely]] {
      info.tls = &tls_->info();
    }
    append_request_json(json, info);
    body_len = json.size();
  }

  ResponseHeadSpec spec;
  spec.status = c.status;
  spec.content_type = json_body ? "application/json" : "application/octet-stream";
  spec.body_mode = no_body_status ? BodyMode::kNone
                   : chunked      ? BodyMode::kChunked
                                  : BodyMode::kContentLength;
  // x-echo-partial promises more than it sends, even for an empty body.
  spec.content_length = partial ? std::max<uint64_t>(body_len, 1) : body_len;
  spec.close = close;
  spec.keep_alive_10 = http10 && !close;
  spec.request_headers = &head_.headers;
  append_response_head(out_, spec);

  if (!head_only && !no_body_status) {
    uint64_t send_len = partial ? body_len / 2 : body_len;
    if (json_body || send_len <= kInlineBodyMax) {
      if (chunked && send_len > 0) append_chunk_size(out_, send_len);
      if (json_body) {
        out_.append(json.data(), send_len);
      } else {
        out_.append(send_len, 'a');
      }
      if (chunked && send_len > 0) out_.append("\r\n");
      if (chunked && !partial) out_.append("0\r\n\r\n");
    } else {
      start_stream(send_len, chunked, !partial);
    }
  }
  if (partial) {
    reset_after_output_ = true;
  } else {
    closing_ = close;
  }
}

void EchoConnection::fail(int status, std::string_view reason) {
  append_simple(status, reason, /*close=*/true);
  closing_ = true;
}

void EchoConnection::append_simple(int status, std::string_view text, bool close) {
  ResponseHeadSpec spec;
  spec.status = status;
  spec.content_type = "text/plain";
  spec.content_length = text.size() + 1;
  spec.close = close;
  append_response_head(out_, spec);
  out_.append(text);
  out_.push_back('\n');
}

void EchoConnection::start_stream(uint64_t bytes, bool chunked, bool terminate) {
  stream_active_ = true;
  stream_chunked_ = chunked;
  stream_terminate_ = terminate;
  chunk_open_ = false;
  stream_remaining_ = bytes;
  piece_left_ = 0;
}

// Called when the current piece is fully sent. Chunk framing goes into out_, which at this point
// holds only bytes that precede the next piece.
void EchoConnection::next_piece() {
  if (chunk_open_) {
    out_.append("\r\n");
    chunk_open_ = false;
  }
  if (stream_remaining_ == 0) {
    if (stream_chunked_ && stream_terminate_) out_.append("0\r\n\r\n");
    stream_active_ = false;
    return;
  }
  uint64_t n = std::min(stream_remaining_, kMaxPiece);
  if (stream_chunked_) {
    append_chunk_size(out_, n);
    chunk_open_ = true;
  }
  piece_left_ = n;
  stream_remaining_ -= n;
}

bool EchoConnection::flush() {
  for (;;) {
    if (stream_active_ && piece_left_ == 0) next_piece();
    iovec iov[1 + kMaxPatternIov];
    int count = 0;
    size_t total = 0;
    size_t queued = out_.size() - out_pos_;
    if (queued > 0) {
      iov[count++] = {out_.data() + out_pos_, queued};
      total += queued;
    }
    for (uint64_t left = piece_left_; left > 0 && count < static_cast<int>(std::size(iov));) {
      size_t k = static_cast<size_t>(std::min<uint64_t>(left, kPatternSize));
      iov[count++] = {const_cast<char*>(kPattern.data()), k};
      total += k;
      left -= k;
    }
    if (count == 0) return true;
    ssize_t n;
    if (tls_) [[unlikely]] {
      n = tls_->writev(iov, count);
    } else {
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = static_cast<size_t>(count);
      n = sendmsg(fd_, &msg, MSG_NOSIGNAL);
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;  // EPOLLOUT edge resumes us
      abort_now();
      return false;
    }
    size_t sent = static_cast<size_t>(n);
    size_t from_out = std::min(sent, queued);
    out_pos_ += from_out;
    piece_left_ -= sent - from_out;
    if (out_pos_ == out_.size()) {
      out_pos_ = 0;
      if (out_.capacity() > kMaxKeptOutputCapacity) {
        std::string().swap(out_);
      } else {
        out_.clear();
      }
    }
    if (sent < total) return true;  // socket buffer full
  }
}

void EchoConnection::after_output() {
  if (output_pending() || ending_ != Ending::kNone) return;
  if (reset_after_output_) {
    ending_ = Ending::kResetWait;
    reset_deadline_ms_ = loop_.now_ms() + kResetWaitMs;
    check_reset_wait();
    return;
  }
  if (closing_) {
    begin_linger();
    return;
  }
  if (peer_eof_ && !delay_pending_) close_now();
}

void EchoConnection::on_timer() {
  if (closed_) return;
  switch (timer_mode_) {
    case TimerMode::kDelay:
      delay_pending_ = false;
      respond();
      drive();
      return;
    case TimerMode::kLinger:
      close_now();
      return;
    case TimerMode::kResetWait:
      check_reset_wait();
      return;
  }
}

// Closing with unread client bytes in our receive queue would make the kernel send RST, which can
// destroy the response in flight; so shut the write side and read until the client closes.
void EchoConnection::begin_linger() {
  if (peer_eof_) {
    close_now();
    return;
  }
  ending_ = Ending::kLinger;
  if (tls_) tls_->shutdown();
  shutdown(fd_, SHUT_WR);
  timer_mode_ = TimerMode::kLinger;
  timer_.arm(kLingerMs);
  readable_ = true;
  drain_linger();
}

void EchoConnection::drain_linger() {
  for (;;) {
    ssize_t n = recv(fd_, server_.scratch(), EchoServer::kScratchSize, 0);
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    close_now();
    return;
  }
}

// RST discards unsent data, so x-echo-partial waits until the send queue is empty (all acked).
void EchoConnection::check_reset_wait() {
  int queued = 0;
  if (ioctl(fd_, SIOCOUTQ, &queued) != 0 || queued <= 0 ||
      loop_.refresh_now() >= reset_deadline_ms_) {
    abort_now();
    return;
  }
  timer_mode_ = TimerMode::kResetWait;
  timer_.arm(1);
}

void EchoConnection::abort_now() {
  linger lin{};
  lin.l_onoff = 1;
  lin.l_linger = 0;
  setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lin, sizeof lin);
  close_now();
}

bool EchoConnection::check_preface(std::string_view data, size_t* used) {
  size_t n = std::min(data.size(), kH2Preface.size());
  if (data.substr(0, n) != kH2Preface.substr(0, n)) {
    fresh_ = false;  // HTTP/1 (or garbage for the parser to reject)
    return false;
  }
  if (n < kH2Preface.size()) {
    *used = 0;  // wait for the rest of the preface
    return true;
  }
  fresh_ = false;
  Transport transport;
  transport.fd = fd_;
  transport.tls = std::move(tls_);
  auto* h2 = new H2Connection(server_, std::move(transport), remote_);
  std::string initial(data);
  detach();
  server_.adopt(h2);
  h2->start(initial);
  *used = data.size();
  return true;
}

EchoConnection::Switch EchoConnection::maybe_websocket(std::string_view rest) {
  if (!http::header_has_token(head_.upgrade_protocol, "websocket") ||
      head_.target.starts_with(kNoUpgradePrefix)) {
    return Switch::kNone;  // answered as an ordinary request: a 200, not a tunnel
  }
  std::string response(out_, out_pos_);  // answers to earlier pipelined requests go first
  if (!websocket_handshake(head_, &response)) {
    out_.swap(response);
    out_pos_ = 0;
    closing_ = true;
    return Switch::kAnswered;
  }
  // x-echo-ws-info: 1 makes the first message the JSON description of the handshake request,
  // so a test can see what a proxy forwarded.
  std::string info_json;
  bool found = false;
  std::string_view info = http::find_header(head_.headers, "x-echo-ws-info", &found);
  if (found && (info == "1" || http::iequals(info, "true"))) {
    RequestInfo ri;
    ri.backend = server_.name();
    ri.head = &head_;
    ri.body_sha256 = kEmptySha256;
    ri.remote_address = remote_;
    if (tls_) ri.tls = &tls_->info();
    append_request_json(info_json, ri);
    if (!info_json.empty() && info_json.back() == '\n') info_json.pop_back();
  }
  Transport transport;
  transport.fd = fd_;
  transport.tls = std::move(tls_);
  auto* ws =
      new WsConnection(server_, std::move(transport), remote_, std::move(response), info_json);
  std::string initial(rest);
  detach();
  server_.adopt(ws);
  ws->start(initial);
  return Switch::kSwitched;
}

void EchoConnection::detach() {
  closed_ = true;
  timer_.cancel();
  server_.release(this);
}

void EchoConnection::close_now() {
  if (closed_) return;
  closed_ = true;
  timer_.cancel();
  loop_.remove(fd_);
  ::close(fd_);
  server_.release(this);
}

}  // namespace proxenos::echo
