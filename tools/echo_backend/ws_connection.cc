#include "ws_connection.h"

#include <openssl/evp.h>

#include <algorithm>

#include "echo_response.h"
#include "http/header.h"

namespace proxenos::echo {

namespace {

constexpr size_t kMaxQueuedOutput = 256 * 1024;  // stop reading while this much is unsent
constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

constexpr uint8_t kContinuation = 0x0;
constexpr uint8_t kText = 0x1;
constexpr uint8_t kBinary = 0x2;
constexpr uint8_t kClose = 0x8;
constexpr uint8_t kPing = 0x9;
constexpr uint8_t kPong = 0xA;

bool valid_key(std::string_view key) {
  // 16 random bytes in base64: 22 significant characters and "==".
  if (key.size() != 24 || key.substr(22) != "==") return false;
  return std::all_of(key.begin(), key.begin() + 22, [](char c) {
    return http::chars::is_alpha(static_cast<unsigned char>(c)) ||
           http::chars::is_digit(static_cast<unsigned char>(c)) || c == '+' || c == '/';
  });
}

void append_error(std::string* out, int status, std::string_view text, std::string_view extra) {
  std::string body = std::string(text) + "\n";
  out->append("HTTP/1.1 ");
  out->append(std::to_string(status));
  out->push_back(' ');
  out->append(reason_for(status));
  out->append("\r\ncontent-type: text/plain\r\ncontent-length: ");
  out->append(std::to_string(body.size()));
  out->append("\r\n");
  out->append(extra);
  out->append("connection: close\r\n\r\n");
  out->append(body);
}

bool valid_close_code(uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

}  // namespace

std::string websocket_accept_key(std::string_view key) {
  std::string input(key);
  input.append(kGuid);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(input.data(), input.size(), digest, &len, EVP_sha1(), nullptr) != 1) return {};
  unsigned char encoded[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
  int n = EVP_EncodeBlock(encoded, digest, static_cast<int>(len));
  return std::string(reinterpret_cast<const char*>(encoded), static_cast<size_t>(n));
}

bool websocket_handshake(const http::RequestHead& head, std::string* response) {
  if (head.method != "GET") {
    append_error(response, 400, "websocket handshake needs GET", {});
    return false;
  }
  if (head.version_minor < 1) {
    append_error(response, 400, "websocket handshake needs HTTP/1.1", {});
    return false;
  }
  if (head.framing != http::BodyFraming::kNone &&
      !(head.framing == http::BodyFraming::kContentLength && head.content_length == 0)) {
    append_error(response, 400, "websocket handshake with a body", {});
    return false;
  }
  bool found = false;
  std::string_view version = http::find_header(head.headers, "sec-websocket-version", &found);
  if (!found || version != "13") {
    append_error(response, 426, "unsupported Sec-WebSocket-Version (13 is)",
                 "sec-websocket-version: 13\r\n");
    return false;
  }
  std::string_view key = http::find_header(head.headers, "sec-websocket-key", &found);
  if (!found || !valid_key(key)) {
    append_error(response, 400, "missing or malformed Sec-WebSocket-Key", {});
    return false;
  }
  response->append(
      "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
      "sec-websocket-accept: ");
  response->append(websocket_accept_key(key));
  response->append("\r\n");
  std::string_view protocols = http::find_header(head.headers, "sec-websocket-protocol", &found);
  if (found) {
    std::string_view first = protocols.substr(0, protocols.find(','));
    while (!first.empty() && (first.back() == ' ' || first.back() == '\t')) first.remove_suffix(1);
    if (!first.empty()) {
      response->append("sec-websocket-protocol: ");
      response->append(first);
      response->append("\r\n");
    }
  }
  for (const auto& h : head.headers) {
    if (h.name.size() > kResponseHeaderPrefix.size() &&
        http::iequals(h.name.substr(0, kResponseHeaderPrefix.size()), kResponseHeaderPrefix)) {
      response->append(h.name.substr(kResponseHeaderPrefix.size()));
      response->append(": ");
      response->append(h.value);
      response->append("\r\n");
    }
  }
  response->append("\r\n");
  return true;
}

WsConnection::WsConnection(EchoServer& server, Transport transport, std::string remote,
                           std::string initial_output, std::string_view first_message)
    : SwitchedConnection(server, std::move(transport), std::move(remote)) {
  out_ = std::move(initial_output);
  if (!first_message.empty()) {
    append_frame_header(true, kText, first_message.size());
    out_.append(first_message);
  }
}

void WsConnection::start(std::string_view initial_input) {
  register_io();
  if (!initial_input.empty()) process(initial_input);
  drive();
}

void WsConnection::on_ready() {
  drive();
}

void WsConnection::drive() {
  for (;;) {
    if (!flush()) return;
    if (state_ == State::kClosed || !readable_ || pending() >= kMaxQueuedOutput) break;
    char* data = nullptr;
    ssize_t n = read_some(&data);
    if (n < 0) return;
    if (n > 0) process(std::string_view(data, static_cast<size_t>(n)));
  }
  if (state_ == State::kClosed) {
    if (pending() == 0) begin_linger();
    return;
  }
  // The peer went away without a close frame: nothing left to say to it.
  if (peer_eof_) close_now();
}

void WsConnection::process(std::string_view data) {
  size_t i = 0;
  while (i < data.size() && state_ != State::kClosed) {
    if (state_ == State::kHeader) {
      header_[header_len_++] = static_cast<uint8_t>(data[i++]);
      if (header_len_ < 2) continue;
      uint8_t len7 = header_[1] & 0x7F;
      size_t need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4;
      if (header_len_ == 2) {
        if (!parse_header()) return;
        continue;
      }
      if (header_len_ < need) continue;
      uint64_t len = len7;
      size_t pos = 2;
      if (len7 >= 126) {
        size_t bytes = len7 == 126 ? 2 : 8;
        len = 0;
        for (size_t k = 0; k < bytes; ++k) len = (len << 8) | header_[pos + k];
        pos += bytes;
        if (len >> 63) {
          protocol_error("frame length has the top bit set");
          return;
        }
      }
      std::copy(header_ + pos, header_ + pos + 4, mask_);
      payload_len_ = len;
      payload_done_ = 0;
      header_len_ = 0;
      bool control = (opcode_ & 0x8) != 0;
      if (control) {
        control_.clear();
      } else {
        append_frame_header(fin_, opcode_, len);
      }
      state_ = State::kPayload;
      if (len == 0) end_frame();
      continue;
    }
    // Payload: unmask straight into the output (data frames) or the control buffer.
    size_t take =
        static_cast<size_t>(std::min<uint64_t>(data.size() - i, payload_len_ - payload_done_));
    std::string& dst = (opcode_ & 0x8) ? control_ : out_;
    size_t old = dst.size();
    dst.resize(old + take);
    char* p = dst.data() + old;
    const char* src = data.data() + i;
    for (size_t k = 0; k < take; ++k) {
      p[k] = static_cast<char>(src[k] ^ mask_[(payload_done_ + k) & 3]);
    }
    payload_done_ += take;
    i += take;
    if (payload_done_ == payload_len_) end_frame();
  }
}

// Checks what the first two header bytes say.
bool WsConnection::parse_header() {
  fin_ = (header_[0] & 0x80) != 0;
  opcode_ = header_[0] & 0x0F;
  uint8_t len7 = header_[1] & 0x7F;
  if (header_[0] & 0x70) {
    protocol_error("RSV bits set without a negotiated extension");
    return false;
  }
  if ((header_[1] & 0x80) == 0) {
    protocol_error("client frame not masked");
    return false;
  }
  switch (opcode_) {
    case kContinuation:
      if (!in_message_) {
        protocol_error("continuation frame outside a fragmented message");
        return false;
      }
      return true;
    case kText:
    case kBinary:
      if (in_message_) {
        protocol_error("new data frame inside a fragmented message");
        return false;
      }
      return true;
    case kClose:
    case kPing:
    case kPong:
      if (!fin_) {
        protocol_error("fragmented control frame");
        return false;
      }
      if (len7 > 125) {
        protocol_error("control frame payload over 125 bytes");
        return false;
      }
      return true;
    default:
      protocol_error("unknown opcode");
      return false;
  }
}

void WsConnection::end_frame() {
  state_ = State::kHeader;
  if (opcode_ & 0x8) {
    on_control_frame();
    return;
  }
  in_message_ = !fin_;
}

void WsConnection::on_control_frame() {
  switch (opcode_) {
    case kPing:
      append_frame_header(true, kPong, control_.size());
      out_.append(control_);
      return;
    case kPong:
      return;
    case kClose: {
      if (control_.size() == 1) {
        protocol_error("close frame with a 1-byte payload");
        return;
      }
      if (control_.empty()) {
        send_close(0, {});
        return;
      }
      uint16_t code = static_cast<uint16_t>((static_cast<uint8_t>(control_[0]) << 8) |
                                            static_cast<uint8_t>(control_[1]));
      if (!valid_close_code(code)) {
        protocol_error("invalid close code");
        return;
      }
      send_close(code, {});
      return;
    }
    default:
      return;
  }
}

void WsConnection::append_frame_header(bool fin, uint8_t opcode, uint64_t length) {
  char h[10];
  size_t n = 0;
  h[n++] = static_cast<char>((fin ? 0x80 : 0) | opcode);
  if (length < 126) {
    h[n++] = static_cast<char>(length);
  } else if (length <= 0xFFFF) {
    h[n++] = 126;
    h[n++] = static_cast<char>(length >> 8);
    h[n++] = static_cast<char>(length);
  } else {
    h[n++] = 127;
    for (int shift = 56; shift >= 0; shift -= 8) h[n++] = static_cast<char>(length >> shift);
  }
  out_.append(h, n);
}

// code 0: a close frame without payload (the answer to one).
void WsConnection::send_close(uint16_t code, std::string_view reason) {
  state_ = State::kClosed;
  if (close_sent_) return;
  close_sent_ = true;
  if (code == 0) {
    append_frame_header(true, kClose, 0);
    return;
  }
  reason = reason.substr(0, 123);
  append_frame_header(true, kClose, 2 + reason.size());
  out_.push_back(static_cast<char>(code >> 8));
  out_.push_back(static_cast<char>(code & 0xFF));
  out_.append(reason);
}

}  // namespace proxenos::echo
