#include "grpc_stream.h"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "http/header.h"

namespace proxenos::echo {

namespace {

constexpr uint64_t kMaxMessage = 64 * 1024 * 1024;
constexpr size_t kHighWater = 1024 * 1024;  // unsent output beyond which request credit is held
constexpr std::string_view kService = "/echo.Echo/";

constexpr int kInvalidArgument = 3;
constexpr int kResourceExhausted = 8;
constexpr int kUnimplemented = 12;
constexpr int kInternal = 13;

bool parse_u64(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

// grpc-message is percent-encoded: bytes outside printable ASCII, and '%' itself.
std::string percent_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c <= 0x7E && c != '%') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

// The inverse, for x-fail-message (metadata values are ASCII, the message need not be).
std::string percent_decode(std::string_view s) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

GrpcStream::GrpcStream(H2Connection& connection, int32_t id, H2Request request)
    : H2Stream(connection, id, std::move(request)),
      timer_(connection.loop(), [this] { on_timer(); }) {}

void GrpcStream::start() {
  std::string_view path = request_.path;
  if (path.starts_with(kService)) {
    std::string_view name = path.substr(kService.size());
    if (name == "Unary") method_ = Method::kUnary;
    if (name == "ServerStream") method_ = Method::kServerStream;
    if (name == "ClientStream") method_ = Method::kClientStream;
    if (name == "Bidi") method_ = Method::kBidi;
  }
  std::string bad;
  for (const auto& h : request_.headers) {
    uint64_t n = 0;
    if (h.name == "x-delay-ms") {
      if (!parse_u64(h.value, &n) || n > 3600 * 1000) bad = "x-delay-ms";
      delay_ms_ = n;
    } else if (h.name == "x-fail-status") {
      if (!parse_u64(h.value, &n) || n > 999) bad = "x-fail-status";
      fail_ = true;
      fail_status_ = static_cast<int>(n);
    } else if (h.name == "x-fail-message") {
      fail_message_ = percent_decode(h.value);
    } else if (h.name == "x-fail-after") {
      if (!parse_u64(h.value, &n)) bad = "x-fail-after";
      fail_after_ = n;
    } else if (h.name == "x-count") {
      if (!parse_u64(h.value, &n)) bad = "x-count";
      has_count_ = true;
      count_ = n;
    } else if (h.name == "x-message-bytes") {
      if (!parse_u64(h.value, &n) || n > kMaxMessage) bad = "x-message-bytes";
      has_message_bytes_ = true;
      message_bytes_ = n;
    }
  }
  if (method_ == Method::kUnknown) {
    fail_now(kUnimplemented, "unknown method " + request_.path);
    return;
  }
  if (!bad.empty()) {
    fail_now(kInvalidArgument, "malformed " + bad + " metadata");
    return;
  }
  if (delay_ms_ > 0) {
    delay_done_ = false;
    timer_.arm(delay_ms_);
  }
  maybe_respond();
}

void GrpcStream::on_data(const uint8_t* data, size_t length) {
  // Hand the bytes back to flow control unless our answers are piling up unsent.
  if (pending() > kHighWater && !done_) {
    if (held_ == 0) connection_.hold_credit(id_);
    held_ += length;
  } else {
    connection_.consume(id_, length);
  }
  while (length > 0 && !ignore_input_ && !done_) {
    if (prefix_len_ < sizeof prefix_) {
      size_t take = std::min(length, sizeof prefix_ - prefix_len_);
      std::memcpy(prefix_ + prefix_len_, data, take);
      prefix_len_ += take;
      data += take;
      length -= take;
      if (prefix_len_ < sizeof prefix_) return;
      if (prefix_[0] != 0) {
        fail_now(kUnimplemented, "compressed messages are not supported");
        return;
      }
      message_len_ = (uint32_t{prefix_[1]} << 24) | (uint32_t{prefix_[2]} << 16) |
                     (uint32_t{prefix_[3]} << 8) | uint32_t{prefix_[4]};
      if (message_len_ > kMaxMessage) {
        fail_now(kResourceExhausted, "request message larger than 64 MiB");
        return;
      }
      message_.clear();
      if (message_len_ == 0) {
        prefix_len_ = 0;
        on_message({});
      }
      continue;
    }
    size_t take = std::min<size_t>(length, message_len_ - message_.size());
    message_.append(reinterpret_cast<const char*>(data), take);
    data += take;
    length -= take;
    if (message_.size() == message_len_) {
      prefix_len_ = 0;
      on_message(message_);
    }
  }
}

void GrpcStream::on_message(std::string_view message) {
  ++messages_in_;
  switch (method_) {
    case Method::kUnary:
    case Method::kServerStream:
      if (messages_in_ == 1) first_.assign(message);
      return;
    case Method::kClientStream:
      if (concat_.size() + message.size() > kMaxMessage) {
        fail_now(kResourceExhausted, "client stream larger than 64 MiB");
        return;
      }
      concat_.append(message);
      return;
    case Method::kBidi:
      if (finishing_ || done_) return;
      enqueue(message);
      if (fail_ && messages_out_ >= fail_after_) finish(fail_status_, fail_message_);
      return;
    case Method::kUnknown:
      return;
  }
}

void GrpcStream::on_end_stream() {
  half_closed_ = true;
  if (done_ || ignore_input_) return;
  if (prefix_len_ > 0) {
    fail_now(kInternal, "request ended inside a message");
    return;
  }
  if (method_ == Method::kBidi && started_) {
    finish(fail_ ? fail_status_ : 0, fail_ ? fail_message_ : std::string());
    return;
  }
  maybe_respond();
}

void GrpcStream::maybe_respond() {
  if (started_ || done_ || !delay_done_) return;
  if (method_ != Method::kBidi && !half_closed_) return;
  if (fail_ && fail_after_ == 0) {
    fail_now(fail_status_, fail_message_);
    return;
  }
  if ((method_ == Method::kUnary || method_ == Method::kServerStream) && messages_in_ != 1) {
    fail_now(kInternal,
             "expected exactly one request message, got " + std::to_string(messages_in_));
    return;
  }
  started_ = true;
  connection_.submit_response(*this, response_headers(), /*with_body=*/true);
  int end_status = fail_ ? fail_status_ : 0;
  std::string end_message = fail_ ? fail_message_ : std::string();
  switch (method_) {
    case Method::kUnary:
      enqueue(first_);
      finish(end_status, end_message);
      break;
    case Method::kClientStream:
      enqueue(concat_);
      std::string().swap(concat_);
      finish(end_status, end_message);
      break;
    case Method::kServerStream: {
      uint64_t n = 0;
      if (!has_count_) count_ = parse_u64(first_, &n) ? n : 1;
      to_send_ = fail_ ? std::min(count_, fail_after_) : count_;
      next_server_message();
      break;
    }
    case Method::kBidi:
      // Messages that arrived during x-delay-ms are already queued.
      if (half_closed_ || (fail_ && messages_out_ >= fail_after_)) finish(end_status, end_message);
      break;
    case Method::kUnknown:
      break;
  }
  wake();
}

void GrpcStream::next_server_message() {
  if (to_send_ == 0) {
    finish(fail_ ? fail_status_ : 0, fail_ ? fail_message_ : std::string());
    return;
  }
  if (has_message_bytes_) {
    enqueue(std::string(message_bytes_, 'a'));
  } else {
    enqueue(first_ + "-" + std::to_string(messages_out_));
  }
  if (--to_send_ == 0) {
    finish(fail_ ? fail_status_ : 0, fail_ ? fail_message_ : std::string());
    return;
  }
  if (delay_ms_ > 0) {
    pacing_ = true;
    timer_.arm(delay_ms_);
  }
  // Without a delay the next message is produced when nghttp2 has taken this one (read_body), so
  // a client that stops reading stops the production too.
}

void GrpcStream::enqueue(std::string_view message) {
  if (out_pos_ == out_.size()) {
    out_.clear();
    out_pos_ = 0;
  }
  char prefix[5] = {0, static_cast<char>(message.size() >> 24),
                    static_cast<char>(message.size() >> 16), static_cast<char>(message.size() >> 8),
                    static_cast<char>(message.size())};
  out_.append(prefix, sizeof prefix);
  out_.append(message);
  ++messages_out_;
  wake();
}

void GrpcStream::finish(int status, std::string message) {
  if (finishing_ || done_) return;
  finishing_ = true;
  status_ = status;
  status_message_ = std::move(message);
  timer_.cancel();
  pacing_ = false;
  wake();
}

void GrpcStream::fail_now(int status, std::string message) {
  if (done_) return;
  ignore_input_ = true;
  if (started_) {
    finish(status, std::move(message));
    return;
  }
  // Trailers-only: one HEADERS frame with the status, ending the stream.
  done_ = true;
  timer_.cancel();
  FieldList fields = response_headers();
  for (auto& f : status_fields(status, message)) fields.push_back(std::move(f));
  connection_.submit_response(*this, fields, /*with_body=*/false);
  connection_.kick();
}

void GrpcStream::wake() {
  if (started_ && deferred_) {
    deferred_ = false;
    connection_.resume(id_);
  }
  connection_.kick();
}

void GrpcStream::on_timer() {
  if (!delay_done_) {
    delay_done_ = true;
    maybe_respond();
  } else if (pacing_) {
    pacing_ = false;
    next_server_message();
  }
  connection_.kick();
}

ssize_t GrpcStream::read_body(uint8_t* buf, size_t length, uint32_t* flags) {
  if (method_ == Method::kServerStream && delay_ms_ == 0 && to_send_ > 0 && pending() == 0 &&
      !finishing_) {
    next_server_message();
  }
  size_t avail = pending();
  if (avail > 0) {
    size_t n = std::min(avail, length);
    std::memcpy(buf, out_.data() + out_pos_, n);
    out_pos_ += n;
    if (out_pos_ == out_.size()) {
      out_pos_ = 0;
      if (out_.capacity() > kHighWater) {
        std::string().swap(out_);
      } else {
        out_.clear();
      }
    }
    return static_cast<ssize_t>(n);
  }
  if (finishing_ && !done_) {
    done_ = true;
    *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    connection_.submit_trailers(id_, status_fields(status_, status_message_));
    return 0;
  }
  deferred_ = true;
  return NGHTTP2_ERR_DEFERRED;
}

uint64_t GrpcStream::release_credit() {
  if (held_ > 0 && (pending() <= kHighWater / 2 || done_)) {
    connection_.consume(id_, held_);
    held_ = 0;
  }
  return held_;
}

FieldList GrpcStream::response_headers() const {
  FieldList fields;
  fields.emplace_back(":status", "200");
  fields.emplace_back("content-type", "application/grpc");
  if (!connection_.server().options().grpc_echo_metadata) return fields;
  if (!request_.authority.empty()) fields.emplace_back("x-echo-authority", request_.authority);
  for (const auto& [name, value] : request_.fields) {
    if (name == "te" || name == "content-type") continue;
    fields.emplace_back("x-echo-" + name, value);
  }
  return fields;
}

FieldList GrpcStream::status_fields(int status, const std::string& message) const {
  FieldList fields;
  fields.emplace_back("grpc-status", std::to_string(status));
  fields.emplace_back("grpc-message", percent_encode(message));
  fields.emplace_back("x-message-count", std::to_string(messages_in_));
  return fields;
}

}  // namespace proxenos::echo
