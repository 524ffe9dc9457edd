#include "net/address.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <charconv>
#include <cstring>

namespace proxenos::net {

uint16_t Address::port() const {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  if (family() == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  }
  return 0;
}

std::string Address::ip() const {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (family() == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, buf, sizeof buf);
  } else if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, buf,
              sizeof buf);
  }
  return buf;
}

std::string Address::to_string() const {
  std::string out;
  out.reserve(48);
  if (family() == AF_INET6) out.push_back('[');
  out.append(ip());
  if (family() == AF_INET6) out.push_back(']');
  out.push_back(':');
  out.append(std::to_string(port()));
  return out;
}

Address Address::from_ip_port(std::string_view ip, uint16_t port, bool* ok) {
  Address a;
  std::string host(ip);
  *ok = false;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    a.length = sizeof(sockaddr_in);
    *ok = true;
    return a;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    a.length = sizeof(sockaddr_in6);
    *ok = true;
  }
  return a;
}

std::optional<Address> Address::parse(std::string_view text, uint16_t default_port) {
  std::string_view host = text;
  uint16_t port = default_port;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = text.substr(1, close - 1);
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':') return std::nullopt;
      port_text = text.substr(close + 2);
    }
  } else if (size_t colon = text.rfind(':');
             colon != std::string_view::npos && text.find(':') == colon) {
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  if (!port_text.empty()) {
    unsigned value = 0;
    auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc() || p != port_text.data() + port_text.size() || value > 65535) {
      return std::nullopt;
    }
    port = static_cast<uint16_t>(value);
  }
  bool ok = false;
  Address a = from_ip_port(host, port, &ok);
  if (!ok) return std::nullopt;
  return a;
}

std::vector<Address> resolve(const std::string& host, uint16_t port, bool ipv4, bool ipv6,
                             std::string* error) {
  std::vector<Address> out;
  bool ok = false;
  Address literal = Address::from_ip_port(host, port, &ok);
  if (ok) {
    out.push_back(literal);
    return out;
  }
  addrinfo hints{};
  hints.ai_family = (ipv4 && ipv6) ? AF_UNSPEC : (ipv6 ? AF_INET6 : AF_INET);
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0) {
    if (error) *error = gai_strerror(rc);
    return out;
  }
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    Address a;
    std::memcpy(&a.storage, ai->ai_addr, ai->ai_addrlen);
    a.length = ai->ai_addrlen;
    bool dup = false;
    for (const auto& e : out) {
      dup = dup || (e.length == a.length && std::memcmp(&e.storage, &a.storage, a.length) == 0);
    }
    if (!dup) out.push_back(a);
  }
  freeaddrinfo(res);
  return out;
}

}  // namespace proxenos::net
