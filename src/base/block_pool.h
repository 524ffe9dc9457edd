#pragma once
// Per-thread free lists of small memory blocks for the hot path's short-lived objects: HTTP/2
// streams, nghttp2's per-stream and per-frame allocations. A worker allocates and frees these
// hundreds of thousands of times a second, with ~100 live at once per connection; glibc's
// per-thread cache holds only 7 blocks per size, so most of them went through the shared heap.
// Here a free is a push and an allocation a pop on this thread's list for the size class.
//
// Every block is a malloc'd one, so a block may be freed on any thread: it joins that thread's
// cache (a worker's objects normally never leave it; teardown may free them elsewhere). Each list
// keeps at most kMaxCachedBytesPerClass; beyond that, and above kMaxPooledSize, blocks go back to
// malloc. Memory is 16-byte aligned, as malloc's. Built with AddressSanitizer, the pool passes
// everything to malloc/free (use-after-free stays detectable); tests that observe caching check
// pool_caches().

#include <cstddef>

namespace proxenos::base {

inline constexpr size_t kMaxPooledSize = 4096;
inline constexpr size_t kMaxCachedBytesPerClass = 256 * 1024;

// Sized interface: the caller passes the same size to free (class operator new/delete).
void* pool_allocate(size_t size);
void pool_free(void* block, size_t size) noexcept;

// malloc-like interface (for C libraries): the size is kept in a 16-byte header.
void* pool_malloc(size_t size);
void* pool_calloc(size_t count, size_t size);
void* pool_realloc(void* block, size_t size);
void pool_release(void* block) noexcept;

// Blocks cached by this thread (tests, diagnostics).
size_t pool_cached_blocks();
// False when the build passes every block straight to malloc (AddressSanitizer).
bool pool_caches();

// Standard allocator over the pool, for node containers on the hot path (one node per stream).
template <typename T>
struct PoolAllocator {
  using value_type = T;
  PoolAllocator() noexcept = default;
  template <typename U>
  PoolAllocator(const PoolAllocator<U>&) noexcept {}  // NOLINT: implicit, as allocators are
  T* allocate(size_t n) { return static_cast<T*>(pool_allocate(n * sizeof(T))); }
  void deallocate(T* p, size_t n) noexcept { pool_free(p, n * sizeof(T)); }
  template <typename U>
  bool operator==(const PoolAllocator<U>&) const noexcept {
    return true;
  }
};

// Mix-in giving a class pooled operator new/delete.
struct PooledObject {
  static void* operator new(size_t size) { return pool_allocate(size); }
  static void operator delete(void* block, size_t size) noexcept { pool_free(block, size); }
};

}  // namespace proxenos::base
