#include "proxy/grpc_web_bridge.h"

#include <algorithm>

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
  translating_ = false;
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

bool GrpcWebBridge::rewrite_response(http::ResponseHead& head) {
  translating_ = false;
  std::string_view content_type = http::find_header(head.headers, "content-type");
  if (!http::is_grpc_content_type(content_type)) return false;
  response_content_type_ = http::grpc_to_grpc_web_content_type(content_type, response_format_);
  std::erase_if(head.headers,
                [](const http::HeaderField& f) { return http::iequals(f.name, "content-length"); });
  for (http::HeaderField& f : head.headers) {
    if (http::iequals(f.name, "content-type")) f.value = response_content_type_;
  }
  if (head.framing == http::BodyFraming::kContentLength) {
    head.framing = http::BodyFraming::kChunked;
    head.content_length = 0;
  }
  translating_ = true;
  return true;
}

}  // namespace proxenos::proxy
