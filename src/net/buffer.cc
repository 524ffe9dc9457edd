#include "net/buffer.h"

#include <algorithm>

namespace proxenos::net {

void Buffer::ensure_writable(size_t n) {
  if (writable() >= n) return;
  compact();
  if (writable() >= n) return;
  size_t capacity = std::max(capacity_ * 2, end_ + n);
  std::unique_ptr<char[]> bigger(new char[capacity]);
  std::memcpy(bigger.get(), data_.get(), end_);
  data_ = std::move(bigger);
  capacity_ = capacity;
}

std::unique_ptr<Buffer> BufferPool::take() {
  if (free_.empty()) return std::make_unique<Buffer>();
  auto b = std::move(free_.back());
  free_.pop_back();
  return b;
}

void BufferPool::give(std::unique_ptr<Buffer> buffer) {
  if (!buffer || buffer->capacity() != kBufferSize || free_.size() >= kMaxIdle) return;
  buffer->clear();
  free_.push_back(std::move(buffer));
}

}  // namespace proxenos::net
