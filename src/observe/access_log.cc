#include "observe/access_log.h"

#include "base/time_format.h"

#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <ctime>

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

}  // namespace

std::optional<AccessLogFormat> AccessLogFormat::parse(std::string_view format, std::string* error) {
  AccessLogFormat f;
  size_t i = 0;
  std::string literal;
  auto flush_literal = [&] {
    if (!literal.empty()) {
      f.pieces_.push_back(Piece{Op::kLiteral, literal, {}, 0});
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
      return std::nullopt;
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
      std::from_chars(n.data(), n.data() + n.size(), p.max_length);
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
    } else if (auto arg2 = arg_of("RESP")) {
      p.op = Op::kResp;
      p.text = lower(*arg2);
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
    } else if (cmd == "DOWNSTREAM_REMOTE_ADDRESS") {
      p.op = Op::kDownstreamRemote;
    } else if (cmd == "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT") {
      p.op = Op::kDownstreamRemoteNoPort;
    } else if (cmd == "PROTOCOL") {
      p.op = Op::kProtocol;
    } else if (cmd == "ROUTE_NAME") {
      p.op = Op::kRouteName;
    } else {
      if (error) *error = "unknown command operator %" + std::string(cmd) + "%";
      return std::nullopt;
    }
    f.pieces_.push_back(std::move(p));
  }
  flush_literal();
  return f;
}

void AccessLogFormat::append_piece(const Piece& piece, const AccessLogRecord& r,
                                   std::string& out) const {
  size_t start = out.size();
  switch (piece.op) {
    case Op::kLiteral:
      out.append(piece.text);
      return;
    case Op::kStartTime:
      base::append_rfc3339_ms(r.start_unix_ms, out);
      return;
    case Op::kReq: {
      auto special = [&](std::string_view name, bool* found) -> std::string_view {
        *found = true;
        if (name == ":method") return r.method;
        if (name == ":path") return r.path;
        if (name == ":authority") return r.authority;
        if (name == "x-envoy-original-path") {
          *found = !r.original_path.empty();
          return r.original_path;
        }
        if (name == "x-request-id" && !r.request_id.empty()) return r.request_id;
        return header_value(r.request_headers, name, found);
      };
      bool found = false;
      std::string_view v = special(piece.text, &found);
      if (!found && !piece.fallback.empty()) v = special(piece.fallback, &found);
      if (!found || v.empty()) {
        out.push_back('-');
      } else {
        out.append(piece.max_length ? v.substr(0, piece.max_length) : v);
      }
      break;
    }
    case Op::kResp: {
      bool found = false;
      std::string_view v;
      if (piece.text == "x-envoy-upstream-service-time" && r.upstream_service_time_ms >= 0) {
        append_uint(out, static_cast<uint64_t>(r.upstream_service_time_ms));
        return;
      }
      v = header_value(r.response_headers, piece.text, &found);
      if (!found || v.empty()) {
        out.push_back('-');
      } else {
        out.append(v);
      }
      break;
    }
    case Op::kResponseCode:
      append_uint(out, static_cast<uint64_t>(r.response_code));
      break;
    case Op::kResponseFlags:
      out.append(r.response_flags.empty() ? "-" : r.response_flags);
      break;
    case Op::kBytesReceived:
      append_uint(out, r.bytes_received);
      break;
    case Op::kBytesSent:
      append_uint(out, r.bytes_sent);
      break;
    case Op::kDuration:
      append_uint(out, r.duration_ms);
      break;
    case Op::kUpstreamHost:
      out.append(r.upstream_host.empty() ? "-" : r.upstream_host);
      break;
    case Op::kUpstreamCluster:
      out.append(r.upstream_cluster.empty() ? "-" : r.upstream_cluster);
      break;
    case Op::kDownstreamRemote:
      out.append(r.downstream_remote_address);
      break;
    case Op::kDownstreamRemoteNoPort: {
      std::string_view a = r.downstream_remote_address;
      size_t colon = a.rfind(':');
      if (colon != std::string_view::npos) a = a.substr(0, colon);
      if (a.size() >= 2 && a.front() == '[') a = a.substr(1, a.size() - 2);
      out.append(a);
      break;
    }
    case Op::kProtocol:
      out.append(r.protocol);
      break;
    case Op::kRouteName:
      out.append(r.route_name.empty() ? "-" : r.route_name);
      break;
  }
  // Log lines are one per request: a value must not be able to forge another line.
  for (size_t i = start; i < out.size(); ++i) {
    if (out[i] == '\n' || out[i] == '\r') out[i] = ' ';
  }
}

void AccessLogFormat::append(const AccessLogRecord& record, std::string& out) const {
  for (const auto& piece : pieces_) append_piece(piece, record, out);
  out.push_back('\n');
}

AccessLogSink::AccessLogSink(int fd) : fd_(fd), thread_([this] { run(); }) {}

AccessLogSink::~AccessLogSink() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
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
    lock.unlock();
    size_t off = 0;
    while (off < chunk.size()) {
      ssize_t n = write(fd_, chunk.data() + off, chunk.size() - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        break;
      }
      off += static_cast<size_t>(n);
    }
    lock.lock();
    writing_ = false;
    if (queue_.empty()) idle_cv_.notify_all();
  }
  idle_cv_.notify_all();
}

}  // namespace proxenos::observe
