// Runs the committed seed corpus of the HTTP/2 fuzz target as an ordinary unit test (Envoy's
// practice: every fuzz corpus is also a regression test), through the very same driver. A broken
// invariant traps, which fails the test binary.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "../../fuzz/http2_server_fuzz.cc"  // NOLINT: the driver itself, not a copy

namespace {

TEST(Http2FuzzCorpus, EverySeedRunsClean) {
  const std::filesystem::path dir =
      std::filesystem::path(PROXENOS_SOURCE_DIR) / "tests/fuzz/http2_server_corpus";
  size_t seeds = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    SCOPED_TRACE(entry.path().filename().string());
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    ++seeds;
  }
  EXPECT_GE(seeds, 20u);
}

// Every option mode over every seed, so the corpus covers the modes even where a seed file names
// only one.
TEST(Http2FuzzCorpus, EverySeedInEveryMode) {
  const std::filesystem::path dir =
      std::filesystem::path(PROXENOS_SOURCE_DIR) / "tests/fuzz/http2_server_corpus";
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_FALSE(bytes.empty());
    for (unsigned o = 0; o < 256; o += 3) {
      bytes[0] = static_cast<char>(o);
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    }
  }
}

}  // namespace
