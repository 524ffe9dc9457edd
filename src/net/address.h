#pragma once
// Socket addresses and the blocking name resolution the control thread uses.

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace proxenos::net {

struct Address {
  sockaddr_storage storage{};
  socklen_t length = 0;

  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&storage); }
  sockaddr* sa() { return reinterpret_cast<sockaddr*>(&storage); }
  int family() const { return storage.ss_family; }
  uint16_t port() const;
  std::string ip() const;         // "127.0.0.1" or "::1"
  std::string to_string() const;  // "127.0.0.1:80" or "[::1]:80"

  // Numeric "ip:port" / "[ip6]:port" / "ip" with default_port.
  static std::optional<Address> parse(std::string_view text, uint16_t default_port = 0);
  static Address from_ip_port(std::string_view ip, uint16_t port, bool* ok);
};

// Blocking getaddrinfo: call only off the workers (the control thread resolves and posts results).
std::vector<Address> resolve(const std::string& host, uint16_t port, bool ipv4, bool ipv6,
                             std::string* error);

}  // namespace proxenos::net
