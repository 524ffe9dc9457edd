// libFuzzer target for the PROXY protocol v1/v2 parser. Besides memory errors (run it with
// ASan/UBSan) it traps on broken invariants: a header longer than its input or than the spec
// allows, waiting for bytes beyond 107 (v1) or 16 + length (v2), a result that depends on bytes
// after the header, a prefix of a header that does not answer "incomplete" (or the same error),
// and TLVs that do not tile their block.

#include <sys/socket.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

// The fuzz build links only the HTTP library into its targets (see CMakeLists.txt), so the parser
// is compiled into this target directly; it depends on nothing but net/address.h's struct. This
// also gives the parser libFuzzer's coverage instrumentation.
#include "net/proxy_protocol.cc"  // NOLINT(bugprone-suspicious-include)

namespace {

using proxenos::net::Address;
using proxenos::net::kProxyV1MaxLine;
using proxenos::net::kProxyV2HeaderSize;
using proxenos::net::parse_proxy_header;
using proxenos::net::ProxyCommand;
using proxenos::net::ProxyHeaderResult;
using proxenos::net::ProxyParseStatus;
using proxenos::net::ProxyTlv;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool same_address(const Address& a, const Address& b) {
  return a.length == b.length && std::memcmp(&a.storage, &b.storage, sizeof a.storage) == 0;
}

bool same(const ProxyHeaderResult& a, const ProxyHeaderResult& b) {
  if (a.status != b.status || a.consumed != b.consumed || a.error != b.error) return false;
  if (a.status != ProxyParseStatus::kDone) return true;
  return a.header.version == b.header.version && a.header.command == b.header.command &&
         same_address(a.header.source, b.header.source) &&
         same_address(a.header.destination, b.header.destination) &&
         a.header.tlvs.raw() == b.header.tlvs.raw();
}

// Prefix lengths to try: all of them for short inputs, a spread plus the last few otherwise
// (every prefix of a 64 KiB header would make each run quadratic).
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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const ProxyHeaderResult r = parse_proxy_header(in);
  const bool v1 = !in.empty() && in[0] == 'P';

  switch (r.status) {
    case ProxyParseStatus::kIncomplete: {
      check(r.error.empty() && r.consumed == 0);
      if (v1) {
        check(in.size() < kProxyV1MaxLine);
      } else if (in.size() >= kProxyV2HeaderSize) {
        const size_t len = (size_t{data[14]} << 8) | data[15];
        check(in.size() < kProxyV2HeaderSize + len);
      }
      // Whatever comes next, the bytes so far must not have been enough on their own.
      return 0;
    }
    case ProxyParseStatus::kError: {
      check(!r.error.empty() && r.consumed == 0);
      for_prefixes(in.size(), [&](size_t n) {
        const ProxyHeaderResult p = parse_proxy_header(in.substr(0, n));
        check(p.status == ProxyParseStatus::kIncomplete || same(p, r));
      });
      return 0;
    }
    case ProxyParseStatus::kDone:
      break;
  }

  check(r.error.empty() && r.consumed > 0 && r.consumed <= in.size());
  check(r.header.version == 1 || r.header.version == 2);
  if (r.header.version == 1) {
    check(v1 && r.consumed <= kProxyV1MaxLine && in.substr(r.consumed - 2, 2) == "\r\n");
    check(r.header.tlvs.empty());
  } else {
    const size_t len = (size_t{data[14]} << 8) | data[15];
    check(r.consumed == kProxyV2HeaderSize + len);
  }
  if (r.header.command == ProxyCommand::kProxy) {
    const int family = r.header.source.family();
    check(family == AF_INET || family == AF_INET6);
    check(r.header.destination.family() == family);
    check(r.header.source.length == r.header.destination.length);
  } else {
    check(r.header.source.length == 0 && r.header.destination.length == 0);
  }
  size_t tiled = 0;
  for (const ProxyTlv& tlv : r.header.tlvs) {
    check(tlv.value.data() == r.header.tlvs.raw().data() + tiled + 3);
    tiled += 3 + tlv.value.size();
  }
  check(tiled == r.header.tlvs.raw().size());

  // The header alone, or followed by other bytes, parses the same.
  check(same(parse_proxy_header(in.substr(0, r.consumed)), r));
  std::string longer(in.substr(0, r.consumed));
  longer.append("\x16\x03\x01", 3);
  check(same(parse_proxy_header(longer), r));
  // Any shorter prefix asks for more.
  for_prefixes(r.consumed, [&](size_t n) {
    check(parse_proxy_header(in.substr(0, n)).status == ProxyParseStatus::kIncomplete);
  });
  return 0;
}
