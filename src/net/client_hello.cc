#include "net/client_hello.h"

#include <algorithm>

namespace proxenos::net {

namespace {

constexpr uint8_t kHandshakeRecord = 0x16;
constexpr uint8_t kClientHello = 1;
constexpr size_t kRecordHeader = 5;
constexpr size_t kHandshakeHeader = 4;
constexpr size_t kMaxRecordPayload = 16384;  // 2^14 (RFC 8446 §5.1)
constexpr uint16_t kExtServerName = 0;
constexpr uint16_t kExtAlpn = 16;
constexpr uint8_t kHostName = 0;
constexpr size_t kMaxHostName = 255;

ClientHelloResult fail(const char* why) {
  ClientHelloResult r;
  r.status = ClientHelloStatus::kError;
  r.error = why;
  return r;
}

// Bounds-checked big-endian reads over one span; any read past the end sets `bad`.
class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}
  bool bad() const { return bad_; }
  bool empty() const { return pos_ >= s_.size(); }
  size_t left() const { return bad_ ? 0 : s_.size() - pos_; }
  uint32_t u8() { return static_cast<uint32_t>(take_int(1)); }
  uint32_t u16() { return static_cast<uint32_t>(take_int(2)); }
  std::string_view bytes(size_t n) {
    if (bad_ || n > s_.size() - pos_) {
      bad_ = true;
      return {};
    }
    std::string_view v = s_.substr(pos_, n);
    pos_ += n;
    return v;
  }

 private:
  uint64_t take_int(size_t n) {
    std::string_view b = bytes(n);
    uint64_t v = 0;
    for (char c : b) v = (v << 8) | static_cast<unsigned char>(c);
    return v;
  }
  std::string_view s_;
  size_t pos_ = 0;
  bool bad_ = false;
};

// The ClientHello body (after the 4-byte handshake header), complete.
ClientHelloResult parse_body(std::string_view body) {
  Reader r(body);
  r.bytes(2 + 32);  // legacy_version, random
  size_t session_id = r.u8();
  if (session_id > 32) return fail("session id longer than 32 bytes");
  r.bytes(session_id);
  size_t suites = r.u16();
  if (!r.bad() && (suites < 2 || suites % 2 != 0)) return fail("bad cipher suite list length");
  r.bytes(suites);
  size_t compression = r.u8();
  if (!r.bad() && compression < 1) return fail("no compression method");
  r.bytes(compression);
  if (r.bad()) return fail("ClientHello shorter than its fields");

  ClientHelloResult out;
  out.status = ClientHelloStatus::kDone;
  if (r.empty()) return out;  // no extensions (TLS 1.0-1.2)
  size_t ext_len = r.u16();
  if (r.bad() || ext_len != r.left()) return fail("extensions do not fill the ClientHello");
  bool seen_sni = false, seen_alpn = false;
  while (!r.empty()) {
    uint32_t type = r.u16();
    size_t len = r.u16();
    std::string_view data = r.bytes(len);
    if (r.bad()) return fail("extension longer than its block");
    if (type == kExtServerName) {
      if (seen_sni) return fail("duplicate server_name extension");
      seen_sni = true;
      Reader e(data);
      size_t list = e.u16();
      if (e.bad() || list != e.left() || list == 0) return fail("bad server_name list length");
      while (!e.empty()) {
        uint32_t name_type = e.u8();
        size_t name_len = e.u16();
        std::string_view name = e.bytes(name_len);
        if (e.bad()) return fail("server name longer than its list");
        if (name_type != kHostName) continue;
        if (!out.server_name.empty()) return fail("more than one host_name");
        if (name.empty() || name.size() > kMaxHostName) return fail("bad host_name length");
        for (char c : name) {
          auto u = static_cast<unsigned char>(c);
          if (u <= 0x20 || u >= 0x7f) return fail("host_name holds a byte outside printable ASCII");
        }
        out.server_name.assign(name);
        for (char& c : out.server_name) {
          if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        }
      }
    } else if (type == kExtAlpn) {
      if (seen_alpn) return fail("duplicate ALPN extension");
      seen_alpn = true;
      Reader e(data);
      size_t list = e.u16();
      if (e.bad() || list != e.left() || list == 0) return fail("bad ALPN list length");
      while (!e.empty()) {
        size_t n = e.u8();
        std::string_view proto = e.bytes(n);
        if (e.bad() || n == 0) return fail("bad ALPN protocol name");
        out.alpn.emplace_back(proto);
      }
    }
  }
  return out;
}

}  // namespace

ClientHelloResult parse_client_hello(std::string_view in, size_t max_bytes) {
  // Reassemble the handshake message from as many records as it spans. The record headers are
  // checked as they arrive, so a prefix fails with the same error as the whole input.
  std::string message;  // handshake bytes so far (header included)
  size_t pos = 0;
  size_t need = 0;  // the whole handshake message, once its header is known
  while (true) {
    if (pos >= max_bytes) return fail("ClientHello longer than the limit");
    if (in.size() - pos < kRecordHeader) {
      // Check what is there of the header already.
      if (pos < in.size() && static_cast<uint8_t>(in[pos]) != kHandshakeRecord) {
        return fail("not a TLS handshake record");
      }
      if (pos + 1 < in.size() && in[pos + 1] != 3) return fail("not a TLS 3.x record");
      return {};
    }
    if (static_cast<uint8_t>(in[pos]) != kHandshakeRecord)
      return fail("not a TLS handshake record");
    if (in[pos + 1] != 3) return fail("not a TLS 3.x record");
    size_t len =
        (size_t{static_cast<uint8_t>(in[pos + 3])} << 8) | static_cast<uint8_t>(in[pos + 4]);
    if (len == 0 || len > kMaxRecordPayload) return fail("bad TLS record length");
    size_t payload_at = pos + kRecordHeader;
    if (payload_at + len > max_bytes) return fail("ClientHello longer than the limit");
    size_t available = std::min(len, in.size() - payload_at);
    // Take only what the message still needs; the rest of the record is not ours to check.
    size_t want = need == 0 ? kHandshakeHeader : need - message.size();
    if (message.size() < kHandshakeHeader) want = kHandshakeHeader - message.size();
    size_t take = std::min(available, want);
    message.append(in.substr(payload_at, take));
    if (need == 0 && message.size() >= kHandshakeHeader) {
      if (static_cast<uint8_t>(message[0]) != kClientHello) return fail("not a ClientHello");
      size_t body = (size_t{static_cast<uint8_t>(message[1])} << 16) |
                    (size_t{static_cast<uint8_t>(message[2])} << 8) |
                    static_cast<uint8_t>(message[3]);
      // Every record adds a header: the message alone must leave room for at least one.
      if (body + kHandshakeHeader + kRecordHeader > max_bytes) {
        return fail("ClientHello longer than the limit");
      }
      need = kHandshakeHeader + body;
      // The rest of this record may carry more of the message.
      size_t more = std::min(available - take, need - message.size());
      message.append(in.substr(payload_at + take, more));
      take += more;
    }
    if (need != 0 && message.size() == need) {
      if (payload_at + len > in.size()) return {};  // the record must be complete
      ClientHelloResult r = parse_body(std::string_view(message).substr(kHandshakeHeader));
      if (r.status == ClientHelloStatus::kDone) r.consumed = payload_at + len;
      return r;
    }
    if (available < len) return {};  // wait for the rest of this record
    pos = payload_at + len;
  }
}

}  // namespace proxenos::net
