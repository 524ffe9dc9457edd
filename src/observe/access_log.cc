#include "observe/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>

#include "base/time_format.h"

namespace proxenos::observe {

namespace {

// Bytes of log lines allowed to wait for the writer; beyond this lines are dropped and counted
// rather than letting a stuck stdout grow memory without bound.
constexpr size_t kMaxQueuedBytes = 64 * 1024 * 1024;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

void append_uint(std::string& out, uint64_t v) {
  char buf[24];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, p);
}

std::string_view header_value(const http::HeaderList* headers, std::string_view name, bool* found) {
  *found = false;
  if (headers == nullptr) return {};
  return http::find_header(*headers, name, found);
}

// CR and LF in [data, data + n) become spaces. Eight bytes at a time: a word with no byte below
// 0x0e (most values have no control byte at all) is skipped whole.
void blank_line_breaks(char* data, size_t n) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHighs = 0x8080808080808080ULL;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, data + i, 8);
    if (((w - kOnes * 0x0e) & ~w & kHighs) == 0) continue;
    for (size_t k = i; k < i + 8; ++k) {
      if (data[k] == '\n' || data[k] == '\r') data[k] = ' ';
    }
  }
  for (; i < n; ++i) {
    if (data[i] == '\n' || data[i] == '\r') data[i] = ' ';
  }
}

// Length of the well-formed UTF-8 sequence starting at v[i] (RFC 3629: no overlongs, no
// surrogates, nothing above U+10FFFF), or 0 when the bytes there are not one.
size_t utf8_sequence_length(std::string_view v, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(v[k]); };
  unsigned char c = byte(i);
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > v.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return n;
}

// Appends `v` escaped for the inside of a JSON string. Bytes that are not well-formed UTF-8 are
// written as \u00XX (their Latin-1 reading), so a line is always valid JSON and valid UTF-8.
void append_json_escaped(std::string_view v, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t i = 0;
  while (i < v.size()) {
    size_t run = i;
    while (run < v.size()) {
      auto c = static_cast<unsigned char>(v[run]);
      if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') break;
      ++run;
    }
    out.append(v.data() + i, run - i);
    i = run;
    if (i == v.size()) break;
    auto c = static_cast<unsigned char>(v[i]);
    if (c >= 0x80) {
      if (size_t n = utf8_sequence_length(v, i)) {
        out.append(v.data() + i, n);
        i += n;
        continue;
      }
    }
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default: {
        char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
        out.append(esc, sizeof esc);
      }
    }
    ++i;
  }
}

}  // namespace

bool AccessLogFormat::parse_template(std::string_view format, std::vector<Piece>& out,
                                     std::string* error) {
  size_t i = 0;
  std::string literal;
  auto flush_literal = [&] {
    if (!literal.empty()) {
      Piece p;
      p.text = std::move(literal);
      out.push_back(std::move(p));
      literal.clear();
    }
  };
  while (i < format.size()) {
    char c = format[i];
    if (c != '%') {
      literal.push_back(c);
      ++i;
      continue;
    }
    size_t end = format.find('%', i + 1);
    if (end == std::string_view::npos) {
      if (error) *error = "unterminated command operator at offset " + std::to_string(i);
      return false;
    }
    std::string_view cmd = format.substr(i + 1, end - i - 1);
    i = end + 1;
    if (cmd.empty()) {
      literal.push_back('%');
      continue;
    }
    flush_literal();
    Piece p;
    // Optional ":N" length limit after a closing parenthesis.
    if (size_t close = cmd.rfind(')');
        close != std::string_view::npos && close + 1 < cmd.size() && cmd[close + 1] == ':') {
      std::string_view n = cmd.substr(close + 2);
      auto [ptr, ec] = std::from_chars(n.data(), n.data() + n.size(), p.max_length);
      if (ec != std::errc() || ptr != n.data() + n.size() || p.max_length == 0) {
        if (error) *error = "bad length limit in %" + std::string(cmd) + "%";
        return false;
      }
      cmd = cmd.substr(0, close + 1);
    }
    auto arg_of = [&](std::string_view prefix) -> std::optional<std::string_view> {
      if (cmd.size() > prefix.size() + 2 && cmd.substr(0, prefix.size()) == prefix &&
          cmd[prefix.size()] == '(' && cmd.back() == ')') {
        return cmd.substr(prefix.size() + 1, cmd.size() - prefix.size() - 2);
      }
      return std::nullopt;
    };
    if (auto arg = arg_of("REQ")) {
      p.op = Op::kReq;
      std::string_view a = *arg;
      if (size_t q = a.find('?'); q != std::string_view::npos) {
        p.fallback = lower(a.substr(q + 1));
        a = a.substr(0, q);
      }
      p.text = lower(a);
      p.source = req_source(p.text);
      p.fallback_source = req_source(p.fallback);
    } else if (auto arg2 = arg_of("RESP")) {
      p.op = Op::kResp;
      p.text = lower(*arg2);
      p.service_time = p.text == "x-envoy-upstream-service-time";
    } else if (cmd == "START_TIME" || cmd.substr(0, 11) == "START_TIME(") {
      p.op = Op::kStartTime;
    } else if (cmd == "RESPONSE_CODE") {
      p.op = Op::kResponseCode;
    } else if (cmd == "RESPONSE_FLAGS") {
      p.op = Op::kResponseFlags;
    } else if (cmd == "BYTES_RECEIVED") {
      p.op = Op::kBytesReceived;
    } else if (cmd == "BYTES_SENT") {
      p.op = Op::kBytesSent;
    } else if (cmd == "DURATION") {
      p.op = Op::kDuration;
    } else if (cmd == "UPSTREAM_HOST" || cmd == "UPSTREAM_REMOTE_ADDRESS") {
      p.op = Op::kUpstreamHost;
    } else if (cmd == "UPSTREAM_CLUSTER") {
      p.op = Op::kUpstreamCluster;
    } else if (cmd == "UPSTREAM_LOCAL_ADDRESS") {
      p.op = Op::kUpstreamLocal;
    } else if (cmd == "DOWNSTREAM_REMOTE_ADDRESS") {
      p.op = Op::kDownstreamRemote;
    } else if (cmd == "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT") {
      p.op = Op::kDownstreamRemoteNoPort;
    } else if (cmd == "DOWNSTREAM_LOCAL_ADDRESS") {
      p.op = Op::kDownstreamLocal;
    } else if (cmd == "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT") {
      p.op = Op::kDownstreamLocalNoPort;
    } else if (cmd == "REQUESTED_SERVER_NAME") {
      p.op = Op::kRequestedServerName;
    } else if (cmd == "UPSTREAM_TRANSPORT_FAILURE_REASON") {
      p.op = Op::kUpstreamTransportFailure;
    } else if (cmd == "PROTOCOL") {
      p.op = Op::kProtocol;
    } else if (cmd == "ROUTE_NAME") {
      p.op = Op::kRouteName;
    } else if (arg_of("DYNAMIC_METADATA") || arg_of("FILTER_STATE") || arg_of("CLUSTER_METADATA")) {
      // Emissary's default JSON format names istio metadata; there is no such metadata here.
      p.op = Op::kAlwaysMissing;
    } else {
      if (error) *error = "unknown command operator %" + std::string(cmd) + "%";
      return false;
    }
    out.push_back(std::move(p));
  }
  flush_literal();
  return true;
}

std::optional<AccessLogFormat> AccessLogFormat::parse(std::string_view format, std::string* error) {
  AccessLogFormat f;
  if (!parse_template(format, f.pieces_, error)) return std::nullopt;
  return f;
}

void AccessLogFormat::add_literal(std::string_view text) {
  if (!pieces_.empty() && pieces_.back().op == Op::kLiteral) {
    pieces_.back().text.append(text);
    return;
  }
  Piece p;
  p.text = std::string(text);
  pieces_.push_back(std::move(p));
}

// Turns a parsed JSON object into pieces: JSON syntax and keys become literals, values become
// operator pieces in a JSON mode.
class JsonFormatBuilder {
 public:
  using Json = nlohmann::ordered_json;
  using Op = AccessLogFormat::Op;
  using Mode = AccessLogFormat::Mode;
  using Piece = AccessLogFormat::Piece;

  static bool object(const Json& obj, AccessLogFormat& f, const std::string& where,
                     std::string* error) {
    f.add_literal("{");
    bool first = true;
    for (const auto& [key, value] : obj.items()) {
      std::string literal = first ? "\"" : ",\"";
      first = false;
      append_json_escaped(key, literal);
      literal.append("\":");
      f.add_literal(literal);
      std::string path = where.empty() ? key : where + "." + key;
      if (value.is_object()) {
        if (!object(value, f, path, error)) return false;
      } else if (value.is_string()) {
        if (!string_value(value.get_ref<const std::string&>(), f, path, error)) return false;
      } else if (value.is_array()) {
        if (error) *error = path + ": arrays are not supported in a JSON access log format";
        return false;
      } else {
        f.add_literal(value.dump(-1, ' ', false, Json::error_handler_t::replace));
      }
    }
    f.add_literal("}");
    return true;
  }

 private:
  static bool string_value(const std::string& text, AccessLogFormat& f, const std::string& where,
                           std::string* error) {
    std::vector<Piece> pieces;
    std::string e;
    if (!AccessLogFormat::parse_template(text, pieces, &e)) {
      if (error) *error = where + ": " + e;
      return false;
    }
    if (pieces.size() == 1 && pieces[0].op != Op::kLiteral) {
      pieces[0].mode = Mode::kJsonValue;
      f.pieces_.push_back(std::move(pieces[0]));
      return true;
    }
    f.add_literal("\"");
    for (auto& p : pieces) {
      if (p.op == Op::kLiteral) {
        std::string escaped;
        append_json_escaped(p.text, escaped);
        f.add_literal(escaped);
      } else {
        p.mode = Mode::kJsonString;
        f.pieces_.push_back(std::move(p));
      }
    }
    f.add_literal("\"");
    return true;
  }
};

std::optional<AccessLogFormat> AccessLogFormat::parse_json(std::string_view json_object_text,
                                                           std::string* error) {
  auto parsed = nlohmann::ordered_json::parse(json_object_text, nullptr, false);
  if (parsed.is_discarded()) {
    if (error) *error = "not valid JSON";
    return std::nullopt;
  }
  if (!parsed.is_object()) {
    if (error) *error = "a JSON access log format must be an object of key: format string";
    return std::nullopt;
  }
  AccessLogFormat f;
  f.json_ = true;
  if (!JsonFormatBuilder::object(parsed, f, "", error)) return std::nullopt;
  return f;
}

AccessLogFormat::ReqSource AccessLogFormat::req_source(std::string_view lower_name) {
  if (lower_name == ":method") return ReqSource::kMethod;
  if (lower_name == ":path") return ReqSource::kPath;
  if (lower_name == ":authority") return ReqSource::kAuthority;
  if (lower_name == "x-envoy-original-path") return ReqSource::kOriginalPath;
  if (lower_name == "x-request-id") return ReqSource::kRequestId;
  if (lower_name == "x-forwarded-for") return ReqSource::kForwardedFor;
  return ReqSource::kHeader;
}

// The value of a string-valued operator (not literals, numbers or times); empty when missing.
std::string_view AccessLogFormat::value_of(const Piece& piece, const AccessLogRecord& r) const {
  std::string_view v;
  switch (piece.op) {
    case Op::kReq: {
      auto lookup = [&](ReqSource source, std::string_view name, bool* found) {
        *found = true;
        switch (source) {
          case ReqSource::kMethod:
            return r.method;
          case ReqSource::kPath:
            return r.path;
          case ReqSource::kAuthority:
            return r.authority;
          case ReqSource::kOriginalPath:
            *found = !r.original_path.empty();
            return r.original_path;
          case ReqSource::kRequestId:
            if (!r.request_id.empty()) return r.request_id;
            break;
          case ReqSource::kForwardedFor:
            if (r.forwarded_for != nullptr) {
              *found = !r.forwarded_for->empty();
              return std::string_view(*r.forwarded_for);
            }
            break;
          case ReqSource::kHeader:
            break;
        }
        return header_value(r.request_headers, name, found);
      };
      bool found = false;
      v = lookup(piece.source, piece.text, &found);
      if (!found && !piece.fallback.empty()) {
        v = lookup(piece.fallback_source, piece.fallback, &found);
      }
      if (!found) v = {};
      break;
    }
    case Op::kResp: {
      bool found = false;
      v = header_value(r.response_headers, piece.text, &found);
      if (!found) v = {};
      break;
    }
    case Op::kResponseFlags:
      v = r.response_flags;
      break;
    case Op::kUpstreamHost:
      v = r.upstream_host;
      break;
    case Op::kUpstreamCluster:
      v = r.upstream_cluster;
      break;
    case Op::kUpstreamLocal:
      v = r.upstream_local_address;
      break;
    case Op::kDownstreamRemote:
      v = r.downstream_remote_address;
      break;
    case Op::kDownstreamRemoteNoPort:
    case Op::kDownstreamLocalNoPort: {
      v = piece.op == Op::kDownstreamRemoteNoPort ? r.downstream_remote_address
                                                  : r.downstream_local_address;
      size_t colon = v.rfind(':');
      if (colon != std::string_view::npos) v = v.substr(0, colon);
      if (v.size() >= 2 && v.front() == '[') v = v.substr(1, v.size() - 2);
      break;
    }
    case Op::kDownstreamLocal:
      v = r.downstream_local_address;
      break;
    case Op::kRequestedServerName:
      v = r.requested_server_name;
      break;
    case Op::kUpstreamTransportFailure:
      v = r.upstream_transport_failure_reason;
      break;
    case Op::kProtocol:
      v = r.protocol;
      break;
    case Op::kRouteName:
      v = r.route_name;
      break;
    default:
      break;
  }
  if (piece.max_length && v.size() > piece.max_length) v = v.substr(0, piece.max_length);
  return v;
}

void AccessLogFormat::append_piece(const Piece& piece, const AccessLogRecord& r,
                                   std::string& out) const {
  if (piece.op == Op::kLiteral) {
    out.append(piece.text);
    return;
  }
  // Values that are plain ASCII by construction (numbers, times) are written straight away.
  auto quote = [&](bool on) {
    if (on && piece.mode == Mode::kJsonValue) out.push_back('"');
  };
  switch (piece.op) {
    case Op::kStartTime:
      quote(true);
      base::append_rfc3339_ms(r.start_unix_ms, out);
      quote(true);
      return;
    case Op::kResponseCode:
      append_uint(out, static_cast<uint64_t>(r.response_code < 0 ? 0 : r.response_code));
      return;
    case Op::kBytesReceived:
      append_uint(out, r.bytes_received);
      return;
    case Op::kBytesSent:
      append_uint(out, r.bytes_sent);
      return;
    case Op::kDuration:
      append_uint(out, r.duration_ms);
      return;
    case Op::kResp:
      if (piece.service_time && r.upstream_service_time_ms >= 0) {
        quote(true);
        append_uint(out, static_cast<uint64_t>(r.upstream_service_time_ms));
        quote(true);
        return;
      }
      break;
    default:
      break;
  }

  std::string_view v = value_of(piece, r);
  switch (piece.mode) {
    case Mode::kText: {
      if (v.empty()) v = "-";
      // Log lines are one per request: a value must not be able to forge another line.
      const size_t start = out.size();
      out.append(v);
      blank_line_breaks(out.data() + start, v.size());
      break;
    }
    case Mode::kJsonString:
      append_json_escaped(v.empty() ? std::string_view("-") : v, out);
      break;
    case Mode::kJsonValue:
      if (v.empty() || v == "-") {
        out.append("null");
      } else {
        out.push_back('"');
        append_json_escaped(v, out);
        out.push_back('"');
      }
      break;
  }
}

void AccessLogFormat::append(const AccessLogRecord& record, std::string& out) const {
  if (!json_ && pieces_.size() <= kMaxTextPieces) {
    append_text(record, out);
    return;
  }
  for (const auto& piece : pieces_) append_piece(piece, record, out);
  out.push_back('\n');
}

// Text lines, the common case: every piece's text is found first (numbers and the time are
// formatted into a local buffer), then the line is written with one resize and a copy per piece.
void AccessLogFormat::append_text(const AccessLogRecord& r, std::string& out) const {
  struct Part {
    std::string_view text;
    bool value;  // from the request: line breaks are blanked
  };
  std::array<Part, kMaxTextPieces> parts;
  char scratch[kMaxTextPieces * 24];
  char* free = scratch;
  auto number = [&](uint64_t v) {
    char* start = free;
    free = std::to_chars(free, free + 24, v).ptr;
    return std::string_view(start, static_cast<size_t>(free - start));
  };
  size_t total = 1;  // the newline
  for (size_t i = 0; i < pieces_.size(); ++i) {
    const Piece& piece = pieces_[i];
    Part part{{}, false};
    switch (piece.op) {
      case Op::kLiteral:
        part.text = piece.text;
        break;
      case Op::kStartTime: {
        const size_t n = base::format_rfc3339_ms(r.start_unix_ms, free);
        part.text = std::string_view(free, n);
        free += n;
        break;
      }
      case Op::kResponseCode:
        part.text = number(static_cast<uint64_t>(r.response_code < 0 ? 0 : r.response_code));
        break;
      case Op::kBytesReceived:
        part.text = number(r.bytes_received);
        break;
      case Op::kBytesSent:
        part.text = number(r.bytes_sent);
        break;
      case Op::kDuration:
        part.text = number(r.duration_ms);
        break;
      default:
        if (piece.op == Op::kResp && piece.service_time && r.upstream_service_time_ms >= 0) {
          part.text = number(static_cast<uint64_t>(r.upstream_service_time_ms));
          break;
        }
        part.text = value_of(piece, r);
        if (part.text.empty()) part.text = "-";
        part.value = true;
        break;
    }
    parts[i] = part;
    total += part.text.size();
  }
  const size_t start = out.size();
  out.resize(start + total);
  char* p = out.data() + start;
  for (size_t i = 0; i < pieces_.size(); ++i) {
    const Part& part = parts[i];
    std::memcpy(p, part.text.data(), part.text.size());
    // Log lines are one per request: a value must not be able to forge another line.
    if (part.value) blank_line_breaks(p, part.text.size());
    p += part.text.size();
  }
  *p = '\n';
}

AccessLogSink::AccessLogSink(int fd) : fd_(fd), thread_([this] { run(); }) {}

AccessLogSink::~AccessLogSink() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  for (int fd : retired_fds_) close(fd);
  if (owns_fd_) close(fd_);
}

bool AccessLogSink::reopen(const std::string& path, std::string* error) {
  int fd = 1;
  bool owns = false;
  if (!path.empty() && path != "/dev/fd/1" && path != "/dev/stdout") {
    fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      int e = errno;
      if (error) *error = "cannot open " + path + ": " + std::strerror(e);
      return false;
    }
    owns = true;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (fd == fd_ && !owns) return true;
  if (owns_fd_) {
    // The writer may be in write() on the old descriptor right now; it closes it when done.
    if (writing_) {
      retired_fds_.push_back(fd_);
    } else {
      close(fd_);
    }
  }
  fd_ = fd;
  owns_fd_ = owns;
  return true;
}

void AccessLogSink::submit(std::string&& lines) {
  if (lines.empty()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (queued_bytes_ + lines.size() > kMaxQueuedBytes) {
      dropped_ += lines.size();
      return;
    }
    queued_bytes_ += lines.size();
    queue_.push_back(std::move(lines));
  }
  cv_.notify_one();
}

void AccessLogSink::flush() {
  std::unique_lock<std::mutex> lock(mutex_);
  idle_cv_.wait(lock, [this] { return queue_.empty() && !writing_; });
}

void AccessLogSink::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty() && stop_) break;
    std::string chunk = std::move(queue_.front());
    queue_.pop_front();
    queued_bytes_ -= chunk.size();
    writing_ = true;
    int fd = fd_;
    lock.unlock();
    size_t off = 0;
    while (off < chunk.size()) {
      ssize_t n = write(fd, chunk.data() + off, chunk.size() - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        break;
      }
      off += static_cast<size_t>(n);
    }
    lock.lock();
    writing_ = false;
    for (int old : retired_fds_) close(old);
    retired_fds_.clear();
    if (queue_.empty()) idle_cv_.notify_all();
  }
  idle_cv_.notify_all();
}

}  // namespace proxenos::observe
