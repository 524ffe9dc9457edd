#include "k8s/json_stream.h"

namespace proxenos::k8s {

bool JsonObjectSplitter::feed(std::string_view data, std::vector<std::string>* out) {
  if (failed_) return false;
  buffer_.append(data);
  size_t start = 0;  // first byte of the object being scanned
  for (size_t i = scanned_; i < buffer_.size(); ++i) {
    char c = buffer_[i];
    if (in_string_) {
      if (escape_) {
        escape_ = false;
      } else if (c == '\\') {
        escape_ = true;
      } else if (c == '"') {
        in_string_ = false;
      }
      continue;
    }
    if (depth_ == 0) {
      if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
        if (i == start) start = i + 1;
        continue;
      }
      if (c != '{') {
        failed_ = true;
        return false;
      }
      start = i;
      depth_ = 1;
      continue;
    }
    if (c == '"') {
      in_string_ = true;
    } else if (c == '{' || c == '[') {
      ++depth_;
    } else if (c == '}' || c == ']') {
      if (--depth_ == 0) {
        out->emplace_back(buffer_, start, i + 1 - start);
        start = i + 1;
      }
    }
  }
  buffer_.erase(0, depth_ == 0 ? buffer_.size() : start);
  scanned_ = buffer_.size();
  if (buffer_.size() > kMaxWatchEventBytes) {
    failed_ = true;
    return false;
  }
  return true;
}

}  // namespace proxenos::k8s
