#include "http/grpc.h"

#include <algorithm>
#include <array>
#include <charconv>

namespace proxenos::http {
namespace {

constexpr std::array<std::string_view, 17> kStatusNames = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

constexpr std::string_view kBase64Chars =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// 0..63 for alphabet characters, 64 for '=', 255 for anything else.
constexpr std::array<uint8_t, 256> kBase64Value = [] {
  std::array<uint8_t, 256> t{};
  for (auto& v : t) v = 255;
  for (size_t i = 0; i < kBase64Chars.size(); ++i) {
    t[static_cast<unsigned char>(kBase64Chars[i])] = static_cast<uint8_t>(i);
  }
  t['='] = 64;
  return t;
}();

constexpr char kHex[] = "0123456789ABCDEF";

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c;
}

// The media type of a content-type (parameters and surrounding space dropped).
std::string_view media_type(std::string_view content_type) {
  content_type = content_type.substr(0, content_type.find(';'));
  while (!content_type.empty() && (content_type.back() == ' ' || content_type.back() == '\t')) {
    content_type.remove_suffix(1);
  }
  while (!content_type.empty() && (content_type.front() == ' ' || content_type.front() == '\t')) {
    content_type.remove_prefix(1);
  }
  return content_type;
}

// `type` is `base` or `base+suffix` (case-insensitive); the suffix (with '+') goes to `suffix`.
bool has_base(std::string_view type, std::string_view base, std::string_view* suffix = nullptr) {
  if (type.size() < base.size() || !iequals(type.substr(0, base.size()), base)) return false;
  const std::string_view rest = type.substr(base.size());
  if (!rest.empty() && rest[0] != '+') return false;
  if (suffix != nullptr) *suffix = rest;
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string_view grpc_status_name(GrpcStatus status) {
  const auto i = static_cast<size_t>(status);
  return i < kStatusNames.size() ? kStatusNames[i] : kStatusNames[2];
}

GrpcStatus grpc_status_from_http(int http_status) {
  switch (http_status) {
    case 400:
      return GrpcStatus::kInternal;
    case 401:
      return GrpcStatus::kUnauthenticated;
    case 403:
      return GrpcStatus::kPermissionDenied;
    case 404:
      return GrpcStatus::kUnimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcStatus::kUnavailable;
    default:
      return GrpcStatus::kUnknown;
  }
}

bool is_grpc_content_type(std::string_view content_type) {
  return has_base(media_type(content_type), "application/grpc");
}

std::optional<uint64_t> parse_grpc_timeout_ms(std::string_view value) {
  if (value.size() < 2 || value.size() > 9) return std::nullopt;
  const std::string_view digits = value.substr(0, value.size() - 1);
  uint64_t n = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  switch (value.back()) {
    case 'H':
      return n * 3600 * 1000;
    case 'M':
      return n * 60 * 1000;
    case 'S':
      return n * 1000;
    case 'm':
      return n;
    case 'u':
      return (n + 999) / 1000;
    case 'n':
      return (n + 999999) / 1000000;
    default:
      return std::nullopt;
  }
}

std::string format_grpc_timeout(uint64_t ms) {
  constexpr uint64_t kMax = 99999999;  // 8 digits
  struct Unit {
    uint64_t ms;
    char c;
  };
  for (Unit u : {Unit{1, 'm'}, Unit{1000, 'S'}, Unit{60 * 1000, 'M'}, Unit{3600 * 1000, 'H'}}) {
    const uint64_t v = (ms + u.ms - 1) / u.ms;  // rounded up: never shorten a deadline to zero
    if (v <= kMax) return std::to_string(v) + u.c;
  }
  return std::to_string(kMax) + 'H';
}

std::string grpc_percent_encode(std::string_view message) {
  std::string out;
  out.reserve(message.size());
  for (char c : message) {
    const auto b = static_cast<unsigned char>(c);
    if (b >= 0x20 && b <= 0x7e && b != '%') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 0xf]);
    }
  }
  return out;
}

std::string grpc_percent_decode(std::string_view encoded) {
  std::string out;
  out.reserve(encoded.size());
  for (size_t i = 0; i < encoded.size(); ++i) {
    if (encoded[i] == '%' && i + 2 < encoded.size()) {
      const int hi = hex_value(encoded[i + 1]);
      const int lo = hex_value(encoded[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(encoded[i]);
  }
  return out;
}

void make_grpc_local_reply(GrpcStatus status, std::string_view message,
                           std::string_view content_type, ResponseHead& out) {
  out.clear();
  out.status = 200;
  out.framing = BodyFraming::kNone;
  char digits[4];
  const auto [end, ec] =
      std::to_chars(digits, digits + sizeof(digits), static_cast<unsigned>(status));
  const std::string_view code(digits, static_cast<size_t>(end - digits));
  const std::string encoded = grpc_percent_encode(message);
  // Heap storage (moving the head keeps the views valid), sized before any view is taken.
  out.storage.reserve(std::max<size_t>(64, content_type.size() + code.size() + encoded.size()));
  out.storage.append(content_type);
  out.storage.append(code);
  out.storage.append(encoded);
  const std::string_view s = out.storage;
  out.headers.push_back({"content-type", s.substr(0, content_type.size())});
  out.headers.push_back({"grpc-status", s.substr(content_type.size(), code.size())});
  if (!encoded.empty()) {
    out.headers.push_back({"grpc-message", s.substr(content_type.size() + code.size())});
  }
}

// --- gRPC-Web -------------------------------------------------------------------------------

GrpcWebFormat grpc_web_format(std::string_view content_type) {
  const std::string_view type = media_type(content_type);
  if (has_base(type, "application/grpc-web-text")) return GrpcWebFormat::kText;
  if (has_base(type, "application/grpc-web")) return GrpcWebFormat::kBinary;
  return GrpcWebFormat::kNone;
}

GrpcWebFormat grpc_web_response_format(std::string_view request_content_type,
                                       std::string_view accept) {
  const GrpcWebFormat request = grpc_web_format(request_content_type);
  if (request == GrpcWebFormat::kNone) return GrpcWebFormat::kNone;
  if (request == GrpcWebFormat::kText) return GrpcWebFormat::kText;
  while (!accept.empty()) {
    const size_t comma = accept.find(',');
    if (grpc_web_format(accept.substr(0, comma)) == GrpcWebFormat::kText) {
      return GrpcWebFormat::kText;
    }
    if (comma == std::string_view::npos) break;
    accept.remove_prefix(comma + 1);
  }
  return GrpcWebFormat::kBinary;
}

std::string grpc_web_to_grpc_content_type(std::string_view web_content_type) {
  const std::string_view type = media_type(web_content_type);
  std::string_view suffix;
  if (!has_base(type, "application/grpc-web-text", &suffix) &&
      !has_base(type, "application/grpc-web", &suffix)) {
    return "application/grpc";
  }
  std::string out = "application/grpc";
  for (char c : suffix) out.push_back(lower(c));
  return out;
}

std::string grpc_to_grpc_web_content_type(std::string_view grpc_content_type,
                                          GrpcWebFormat format) {
  std::string_view suffix;
  if (!has_base(media_type(grpc_content_type), "application/grpc", &suffix) || suffix.empty()) {
    suffix = "+proto";
  }
  std::string out =
      format == GrpcWebFormat::kText ? "application/grpc-web-text" : "application/grpc-web";
  for (char c : suffix) out.push_back(lower(c));
  return out;
}

bool Base64StreamDecoder::decode(std::string_view chunk, std::string& out) {
  if (failed_) return false;
  for (char c : chunk) {
    const uint8_t v = kBase64Value[static_cast<unsigned char>(c)];
    if (v == 255) {
      failed_ = true;
      return false;
    }
    group_[pending_++] = static_cast<char>(v);
    if (pending_ < 4) continue;
    pending_ = 0;
    const auto a = static_cast<uint8_t>(group_[0]);
    const auto b = static_cast<uint8_t>(group_[1]);
    const auto c2 = static_cast<uint8_t>(group_[2]);
    const auto d = static_cast<uint8_t>(group_[3]);
    // '=' may only end a group: "xx==" (one byte) or "xxx=" (two bytes).
    if (a == 64 || b == 64 || (c2 == 64 && d != 64)) {
      failed_ = true;
      return false;
    }
    out.push_back(static_cast<char>((a << 2) | (b >> 4)));
    if (c2 == 64) continue;
    out.push_back(static_cast<char>(((b & 0xf) << 4) | (c2 >> 2)));
    if (d == 64) continue;
    out.push_back(static_cast<char>(((c2 & 0x3) << 6) | d));
  }
  return true;
}

void base64_encode(std::string_view bytes, std::string& out) {
  out.reserve(out.size() + (bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t v = (static_cast<uint8_t>(bytes[i]) << 16) |
                       (static_cast<uint8_t>(bytes[i + 1]) << 8) |
                       static_cast<uint8_t>(bytes[i + 2]);
    out.push_back(kBase64Chars[(v >> 18) & 63]);
    out.push_back(kBase64Chars[(v >> 12) & 63]);
    out.push_back(kBase64Chars[(v >> 6) & 63]);
    out.push_back(kBase64Chars[v & 63]);
  }
  const size_t rest = bytes.size() - i;
  if (rest == 0) return;
  uint32_t v = static_cast<uint8_t>(bytes[i]) << 16;
  if (rest == 2) v |= static_cast<uint8_t>(bytes[i + 1]) << 8;
  out.push_back(kBase64Chars[(v >> 18) & 63]);
  out.push_back(kBase64Chars[(v >> 12) & 63]);
  out.push_back(rest == 2 ? kBase64Chars[(v >> 6) & 63] : '=');
  out.push_back('=');
}

bool GrpcWebRequestDecoder::decode(std::string_view chunk, std::string& out) {
  if (format_ != GrpcWebFormat::kText) {
    out.append(chunk);
    return true;
  }
  return base64_.decode(chunk, out);
}

void GrpcWebResponseEncoder::encode_data(std::string_view chunk, std::string& out) const {
  if (format_ == GrpcWebFormat::kText) {
    base64_encode(chunk, out);
  } else {
    out.append(chunk);
  }
}

void GrpcWebResponseEncoder::encode_trailers(const HeaderList& trailers, std::string& out) const {
  std::string frame(5, '\0');
  frame[0] = static_cast<char>(0x80);
  for (const HeaderField& f : trailers) {
    for (char c : f.name) frame.push_back(lower(c));
    frame.append(": ");
    frame.append(f.value);
    frame.append("\r\n");
  }
  const size_t n = frame.size() - 5;
  frame[1] = static_cast<char>(n >> 24);
  frame[2] = static_cast<char>(n >> 16);
  frame[3] = static_cast<char>(n >> 8);
  frame[4] = static_cast<char>(n);
  encode_data(frame, out);
}

}  // namespace proxenos::http
