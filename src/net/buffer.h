#pragma once
// Byte buffers for connections, taken from a per-worker pool only while bytes are in flight, so an
// idle keep-alive connection holds none (architecture: "idle costs nothing").

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

namespace proxenos::net {

inline constexpr size_t kBufferSize = 16 * 1024;

// A contiguous buffer with a readable window [begin_, end_). Grows (rarely: only for request
// heads larger than kBufferSize) by reallocation.
class Buffer {
 public:
  explicit Buffer(size_t capacity = kBufferSize) : data_(new char[capacity]), capacity_(capacity) {}

  std::string_view readable() const { return {data_.get() + begin_, end_ - begin_}; }
  size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  void consume(size_t n) {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  void clear() { begin_ = end_ = 0; }

  // Space to read into; compacts first when the free tail is small.
  char* write_ptr() { return data_.get() + end_; }
  size_t writable() const { return capacity_ - end_; }
  void commit(size_t n) { end_ += n; }
  void compact() {
    if (begin_ == 0) return;
    std::memmove(data_.get(), data_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  void ensure_writable(size_t n);  // compacts, then grows if still short
  void append(std::string_view bytes) {
    ensure_writable(bytes.size());
    std::memcpy(write_ptr(), bytes.data(), bytes.size());
    commit(bytes.size());
  }
  size_t capacity() const { return capacity_; }

 private:
  std::unique_ptr<char[]> data_;
  size_t capacity_;
  size_t begin_ = 0;
  size_t end_ = 0;
};

// Per-worker free list of standard-size buffers (single-threaded).
class BufferPool {
 public:
  std::unique_ptr<Buffer> take();
  void give(std::unique_ptr<Buffer> buffer);  // oversized buffers are freed, not kept
  size_t idle() const { return free_.size(); }

 private:
  // Up to 4 MiB per worker kept warm (only what was once in use at the same time): an HTTP/2
  // connection alone has a hundred streams in flight, each with a buffer or two.
  static constexpr size_t kMaxIdle = 256;
  std::vector<std::unique_ptr<Buffer>> free_;
};

}  // namespace proxenos::net
