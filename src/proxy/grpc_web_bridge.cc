#include "proxy/grpc_web_bridge.h"

#include <algorithm>
#include <charconv>

namespace proxenos::proxy {

bool GrpcWebBridge::start(bool enabled, const http::HeaderList& request_headers) {
  reset();
  if (!enabled) return false;
  std::string_view content_type = http::find_header(request_headers, "content-type");
  request_format_ = http::grpc_web_format(content_type);
  if (request_format_ == http::GrpcWebFormat::kNone) return false;
  response_format_ =
      http::grpc_web_response_format(content_type, http::find_header(request_headers, "accept"));
  decoder_ = http::GrpcWebRequestDecoder(request_format_);
  request_content_type_ = http::grpc_web_to_grpc_content_type(content_type);
  return true;
}

void GrpcWebBridge::reset() {
  request_format_ = response_format_ = http::GrpcWebFormat::kNone;
  decoder_ = http::GrpcWebRequestDecoder(http::GrpcWebFormat::kNone);
  translating_ = holding_ = false;
}

void GrpcWebBridge::rewrite_request_fields(http::HeaderList& fields) const {
  bool text = request_format_ == http::GrpcWebFormat::kText;
  std::erase_if(fields, [text](const http::HeaderField& f) {
    return http::iequals(f.name, "te") || (text && http::iequals(f.name, "content-length"));
  });
  for (http::HeaderField& f : fields) {
    if (http::iequals(f.name, "content-type")) f.value = request_content_type_;
  }
  fields.push_back({"te", "trailers"});
}

bool GrpcWebBridge::rewrite_response(http::ResponseHead& head, bool end_stream) {
  translating_ = holding_ = false;
  std::string_view content_type = http::find_header(head.headers, "content-type");
  const bool grpc = http::is_grpc_content_type(content_type);
  response_content_type_ = http::grpc_to_grpc_web_content_type(
      grpc ? content_type : std::string_view(request_content_type_), response_format_);
  std::erase_if(head.headers,
                [](const http::HeaderField& f) { return http::iequals(f.name, "content-length"); });
  bool typed = false;
  for (http::HeaderField& f : head.headers) {
    if (http::iequals(f.name, "content-type")) {
      f.value = response_content_type_;
      typed = true;
    }
  }
  if (!typed) head.headers.push_back({"content-type", response_content_type_});
  if (!grpc) {
    holding_ = !end_stream;
    held_body_.clear();
    head.framing = http::BodyFraming::kNone;
    head.content_length = 0;
    return false;
  }
  if (head.framing == http::BodyFraming::kContentLength) {
    head.framing = http::BodyFraming::kChunked;
    head.content_length = 0;
  }
  translating_ = true;
  return true;
}

void GrpcWebBridge::hold_data(std::string_view chunk) {
  // Envoy's grpc_web filter keeps as much for the message.
  constexpr size_t kMaxHeldBody = 16 * 1024;
  if (held_body_.size() < kMaxHeldBody) {
    held_body_.append(chunk.substr(0, kMaxHeldBody - held_body_.size()));
  }
}

void GrpcWebBridge::finish_hold(http::ResponseHead& head) {
  holding_ = false;
  held_body_ = http::grpc_percent_encode(held_body_);
  const auto status = static_cast<unsigned>(http::grpc_status_from_http(head.status));
  const auto [end, ec] = std::to_chars(held_status_, held_status_ + sizeof(held_status_), status);
  head.headers.push_back(
      {"grpc-status", std::string_view(held_status_, static_cast<size_t>(end - held_status_))});
  if (!held_body_.empty()) head.headers.push_back({"grpc-message", held_body_});
  head.headers.push_back({"content-length", "0"});
  head.framing = http::BodyFraming::kContentLength;
  head.content_length = 0;
}

}  // namespace proxenos::proxy
