// libFuzzer target for the TLS ClientHello reader that routes passthrough connections by SNI.
// Besides memory errors (run it with ASan/UBSan) it traps on broken invariants: a result that
// claims more bytes than its input or the limit, waiting for more than the limit, a server_name
// that is not lower-case printable ASCII of 1..255 bytes, an empty ALPN name, a result that
// depends on bytes after the ClientHello, and a prefix that does not answer "incomplete" (or the
// very error of the whole input).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

// The fuzz build links only the HTTP library into its targets (see CMakeLists.txt), so the reader
// is compiled into this target directly; it depends on nothing else.
#include "net/client_hello.cc"  // NOLINT(bugprone-suspicious-include)

namespace {

using proxenos::net::ClientHelloResult;
using proxenos::net::ClientHelloStatus;
using proxenos::net::parse_client_hello;

// Small enough that the fuzzer reaches it with -max_len=4096.
constexpr size_t kLimit = 2048;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool same(const ClientHelloResult& a, const ClientHelloResult& b) {
  return a.status == b.status && a.consumed == b.consumed && a.server_name == b.server_name &&
         a.alpn == b.alpn && std::strcmp(a.error, b.error) == 0;
}

template <typename F>
void for_prefixes(size_t end, F&& f) {
  if (end <= 160) {
    for (size_t n = 0; n < end; ++n) f(n);
    return;
  }
  for (size_t n = 0; n < 128; ++n) f(n);
  for (size_t n = 128; n + 8 < end; n += std::max<size_t>(1, end / 64)) f(n);
  for (size_t n = end - 8; n < end; ++n) f(n);
}

void check_result(std::string_view in, size_t limit, const ClientHelloResult& r) {
  switch (r.status) {
    case ClientHelloStatus::kIncomplete:
      check(r.consumed == 0 && r.server_name.empty() && r.alpn.empty() && *r.error == '\0');
      check(in.size() < limit);
      return;
    case ClientHelloStatus::kError:
      check(r.consumed == 0 && *r.error != '\0');
      for_prefixes(in.size(), [&](size_t n) {
        ClientHelloResult p = parse_client_hello(in.substr(0, n), limit);
        check(p.status == ClientHelloStatus::kIncomplete || same(p, r));
      });
      return;
    case ClientHelloStatus::kDone:
      break;
  }
  check(*r.error == '\0' && r.consumed >= 5 + 4 + 38 && r.consumed <= in.size());
  check(r.consumed <= limit);
  check(r.server_name.size() <= 255);
  for (char c : r.server_name) {
    auto u = static_cast<unsigned char>(c);
    check(u > 0x20 && u < 0x7f && !(c >= 'A' && c <= 'Z'));
  }
  for (const std::string& p : r.alpn) check(!p.empty() && p.size() < 256);
  // The ClientHello's records alone, or followed by anything, read the same.
  check(same(parse_client_hello(in.substr(0, r.consumed), limit), r));
  std::string longer(in.substr(0, r.consumed));
  longer.append("\x17\x03\x03\x00\x01x", 6);
  check(same(parse_client_hello(longer, limit), r));
  for_prefixes(r.consumed, [&](size_t n) {
    check(parse_client_hello(in.substr(0, n), limit).status == ClientHelloStatus::kIncomplete);
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  check_result(in, kLimit, parse_client_hello(in, kLimit));
  // The default limit too, for inputs that are real ClientHellos bigger than kLimit.
  check_result(in, proxenos::net::kMaxClientHelloBytes, parse_client_hello(in));
  return 0;
}
