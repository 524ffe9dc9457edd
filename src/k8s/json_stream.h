#pragma once
// Splits a watch body into its JSON objects. The API server ends each event with "\n", but
// clients must decode concatenated JSON rather than split lines (../shared/spec/kubernetes-api.md
// §1.4), so this tracks nesting and strings instead of looking for newlines.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace proxenos::k8s {

// Longest single event accepted: a larger one means a broken stream (or an object the gateway
// cannot hold anyway; etcd's own limit is 1.5 MiB per object).
inline constexpr size_t kMaxWatchEventBytes = 16 * 1024 * 1024;

class JsonObjectSplitter {
 public:
  // Appends `data` and moves every complete top-level object into `out`. False when the stream
  // is not a sequence of objects (text between objects other than whitespace, an event over
  // kMaxWatchEventBytes); the splitter is then unusable.
  bool feed(std::string_view data, std::vector<std::string>* out);
  // Bytes of an object not yet complete.
  size_t pending() const { return buffer_.size(); }

 private:
  std::string buffer_;
  size_t scanned_ = 0;  // bytes of buffer_ already examined
  int depth_ = 0;
  bool in_string_ = false;
  bool escape_ = false;
  bool failed_ = false;
};

}  // namespace proxenos::k8s
