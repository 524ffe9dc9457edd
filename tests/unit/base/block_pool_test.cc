// The per-thread block pool: reuse, size classes, the malloc-like interface nghttp2 uses.

#include "base/block_pool.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace proxenos::base {
namespace {

TEST(BlockPool, FreedBlockIsReusedForTheSameClass) {
  if (!pool_caches()) GTEST_SKIP() << "sanitized build: the pool passes blocks to malloc";
  void* a = pool_allocate(100);
  const size_t cached = pool_cached_blocks();
  pool_free(a, 100);
  EXPECT_EQ(pool_cached_blocks(), cached + 1);
  void* b = pool_allocate(120);  // 100 and 120 share the 128-byte class
  EXPECT_EQ(a, b);
  EXPECT_EQ(pool_cached_blocks(), cached);
  void* c = pool_allocate(200);  // another class: not the cached block
  EXPECT_NE(c, b);
  pool_free(b, 120);
  pool_free(c, 200);
}

TEST(BlockPool, BlocksAreAlignedAndUsableToTheirSize) {
  std::vector<std::pair<void*, size_t>> blocks;
  for (size_t size : {1, 16, 31, 32, 33, 64, 65, 1000, 4096, 4097, 100000}) {
    void* p = pool_allocate(size);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u) << size;
    std::memset(p, 0xab, size);
    blocks.emplace_back(p, size);
    void* m = pool_malloc(size);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(m) % 16, 0u) << size;
    std::memset(m, 0xcd, size);
    pool_release(m);
  }
  for (auto [p, size] : blocks) pool_free(p, size);
}

TEST(BlockPool, LargeBlocksAreNotCached) {
  const size_t cached = pool_cached_blocks();
  pool_free(pool_allocate(kMaxPooledSize + 1), kMaxPooledSize + 1);
  pool_release(pool_malloc(kMaxPooledSize));  // plus its header: above the largest class
  EXPECT_EQ(pool_cached_blocks(), cached);
}

TEST(BlockPool, CacheIsBoundedPerClass) {
  if (!pool_caches()) GTEST_SKIP() << "sanitized build: the pool passes blocks to malloc";
  std::vector<void*> blocks;
  const size_t n = kMaxCachedBytesPerClass / kMaxPooledSize + 10;
  for (size_t i = 0; i < n; ++i) blocks.push_back(pool_allocate(kMaxPooledSize));
  const size_t cached = pool_cached_blocks();
  for (void* p : blocks) pool_free(p, kMaxPooledSize);
  EXPECT_EQ(pool_cached_blocks() - cached, kMaxCachedBytesPerClass / kMaxPooledSize);
}

TEST(BlockPool, CallocZeroesAndReallocKeepsTheBytes) {
  auto* z = static_cast<unsigned char*>(pool_calloc(10, 30));
  for (size_t i = 0; i < 300; ++i) ASSERT_EQ(z[i], 0) << i;
  pool_release(z);
  EXPECT_EQ(pool_calloc(SIZE_MAX / 2, 4), nullptr);  // overflow

  auto* p = static_cast<char*>(pool_malloc(20));
  std::memcpy(p, "0123456789abcdefghij", 20);
  p = static_cast<char*>(pool_realloc(p, 40));  // same 64-byte class: grows in place
  std::memcpy(p + 20, "klmnopqrstuvwxyz!@#$", 20);
  p = static_cast<char*>(pool_realloc(p, 5000));  // moves to a malloc'd block
  EXPECT_EQ(std::string(p, 40), "0123456789abcdefghijklmnopqrstuvwxyz!@#$");
  p = static_cast<char*>(pool_realloc(p, 10));  // shrinks into a pooled block
  EXPECT_EQ(std::string(p, 10), "0123456789");
  EXPECT_EQ(pool_realloc(p, 0), nullptr);  // frees
  void* fresh = pool_realloc(nullptr, 8);
  EXPECT_NE(fresh, nullptr);
  pool_release(fresh);
  pool_release(nullptr);
}

struct Pooled : PooledObject {
  char payload[200];
};

TEST(BlockPool, PooledObjectsReuseTheirBlocks) {
  if (!pool_caches()) GTEST_SKIP() << "sanitized build: the pool passes blocks to malloc";
  auto* a = new Pooled;
  delete a;
  auto* b = new Pooled;
  EXPECT_EQ(static_cast<void*>(a), static_cast<void*>(b));
  delete b;
}

TEST(BlockPool, AllocatorServesNodeContainers) {
  std::unordered_map<int, std::string, std::hash<int>, std::equal_to<>,
                     PoolAllocator<std::pair<const int, std::string>>>
      m;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 500; ++i) m.emplace(i, std::to_string(i * round));
    EXPECT_EQ(m.size(), 500u);
    EXPECT_EQ(m.at(499), std::to_string(499 * round));
    for (int i = 0; i < 500; ++i) m.erase(i);
    EXPECT_TRUE(m.empty());
  }
  if (pool_caches()) {
    EXPECT_GT(pool_cached_blocks(), 0u);  // the nodes wait for reuse
  }
}

TEST(BlockPool, EachThreadHasItsOwnCacheAndDrainsItAtExit) {
  if (!pool_caches()) GTEST_SKIP() << "sanitized build: the pool passes blocks to malloc";
  void* mine = pool_allocate(64);
  pool_free(mine, 64);
  void* theirs = nullptr;
  size_t their_cached = 0;
  std::thread t([&] {
    theirs = pool_allocate(64);
    pool_free(theirs, 64);
    their_cached = pool_cached_blocks();
  });
  t.join();
  EXPECT_NE(theirs, nullptr);
  EXPECT_GE(their_cached, 1u);
  EXPECT_EQ(pool_allocate(64), mine);  // ours is still here
  pool_free(mine, 64);
}

}  // namespace
}  // namespace proxenos::base
