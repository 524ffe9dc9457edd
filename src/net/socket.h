#pragma once
// Thin, non-throwing wrappers over the socket calls the listeners and pools need.

#include <string>

#include "net/address.h"

namespace proxenos::net {

// Non-blocking listening socket with SO_REUSEADDR and (optionally) SO_REUSEPORT so every worker
// can own its own accept queue on the same port. Returns -1 and sets `error` on failure.
int listen_tcp(const Address& address, bool reuse_port, int backlog, std::string* error);

// Starts a non-blocking connect. Returns the fd (connect may still be in progress) or -1.
int connect_tcp(const Address& address, int* error_number);

void set_nodelay(int fd);
int socket_error(int fd);  // SO_ERROR
Address local_address(int fd);
Address peer_address(int fd);

}  // namespace proxenos::net
