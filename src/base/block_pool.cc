#include "base/block_pool.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

namespace proxenos::base {
namespace {

// Size classes: 32, 64, 128, ..., 4096 bytes.
constexpr size_t kMinShift = 5;
constexpr size_t kClasses = 8;
constexpr size_t kHeader = 16;  // pool_malloc's size header; keeps the payload 16-byte aligned
static_assert((size_t{1} << (kMinShift + kClasses - 1)) == kMaxPooledSize);

size_t class_of(size_t size) {
  if (size <= (size_t{1} << kMinShift)) return 0;
  // Index of the smallest power of two >= size, relative to 32.
  return static_cast<size_t>(64 - __builtin_clzll(static_cast<unsigned long long>(size - 1))) -
         kMinShift;
}

size_t class_size(size_t index) {
  return size_t{1} << (index + kMinShift);
}

struct FreeBlock {
  FreeBlock* next;
};

// Trivially destructible, so it stays usable while other thread_local and static objects are
// destroyed at exit: after the drain, blocks go straight back to malloc.
struct ThreadCache {
  std::array<FreeBlock*, kClasses> heads;
  std::array<size_t, kClasses> counts;
  bool armed;  // the drainer below is constructed
  bool dead;   // the thread is exiting: no more caching
};
thread_local ThreadCache t_cache{};

void drain() {
  for (size_t c = 0; c < kClasses; ++c) {
    while (FreeBlock* b = t_cache.heads[c]) {
      t_cache.heads[c] = b->next;
      std::free(b);
    }
    t_cache.counts[c] = 0;
  }
}

struct Drainer {
  ~Drainer() {
    drain();
    t_cache.dead = true;
  }
};
thread_local Drainer t_drainer;

void* checked(void* p) {
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

// Under AddressSanitizer every block goes to malloc and back, so a use after free of a pooled
// object is still caught.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kPassThrough = true;
#else
constexpr bool kPassThrough = false;
#endif

void* allocate(size_t size) {
  if (kPassThrough || size > kMaxPooledSize) return checked(std::malloc(size));
  const size_t c = class_of(size);
  if (FreeBlock* b = t_cache.heads[c]) {
    t_cache.heads[c] = b->next;
    --t_cache.counts[c];
    return b;
  }
  if (!t_cache.armed) {
    t_cache.armed = true;
    [[maybe_unused]] Drainer* construct = &t_drainer;  // odr-use: registers its destructor
  }
  return checked(std::malloc(class_size(c)));
}

void release(void* block, size_t size) noexcept {
  if (block == nullptr) return;
  if (kPassThrough || size > kMaxPooledSize || t_cache.dead) {
    std::free(block);
    return;
  }
  const size_t c = class_of(size);
  if ((t_cache.counts[c] + 1) * class_size(c) > kMaxCachedBytesPerClass) {
    std::free(block);
    return;
  }
  auto* b = static_cast<FreeBlock*>(block);
  b->next = t_cache.heads[c];
  t_cache.heads[c] = b;
  ++t_cache.counts[c];
}

}  // namespace

void* pool_allocate(size_t size) {
  return allocate(size);
}

void pool_free(void* block, size_t size) noexcept {
  release(block, size);
}

void* pool_malloc(size_t size) {
  // The header records the block's total size (class or malloc'd).
  const size_t total = size + kHeader;
  void* raw = nullptr;
  try {
    raw = allocate(total);
  } catch (const std::bad_alloc&) {
    return nullptr;  // C callers expect malloc's contract
  }
  std::memcpy(raw, &total, sizeof(total));
  return static_cast<char*>(raw) + kHeader;
}

void* pool_calloc(size_t count, size_t size) {
  if (size != 0 && count > SIZE_MAX / size) return nullptr;
  void* p = pool_malloc(count * size);
  if (p != nullptr) std::memset(p, 0, count * size);
  return p;
}

void pool_release(void* block) noexcept {
  if (block == nullptr) return;
  char* raw = static_cast<char*>(block) - kHeader;
  size_t total;
  std::memcpy(&total, raw, sizeof(total));
  release(raw, total);
}

void* pool_realloc(void* block, size_t size) {
  if (block == nullptr) return pool_malloc(size);
  if (size == 0) {
    pool_release(block);
    return nullptr;
  }
  char* raw = static_cast<char*>(block) - kHeader;
  size_t total;
  std::memcpy(&total, raw, sizeof(total));
  const size_t new_total = size + kHeader;
  // A pooled block has its class's size; passed-through ones have exactly `total`.
  if (!kPassThrough && total <= kMaxPooledSize && new_total <= kMaxPooledSize &&
      class_of(new_total) == class_of(total)) {
    std::memcpy(raw, &new_total, sizeof(new_total));  // same block, same class on release
    return block;
  }
  void* moved = pool_malloc(size);
  if (moved == nullptr) return nullptr;
  std::memcpy(moved, block, std::min(size, total - kHeader));
  pool_release(block);
  return moved;
}

bool pool_caches() {
  return !kPassThrough;
}

size_t pool_cached_blocks() {
  size_t n = 0;
  for (size_t c : t_cache.counts) n += c;
  return n;
}

}  // namespace proxenos::base
