#pragma once
// Builds a configuration's TLS objects (certificate contexts, each listener's SNI choice, upstream
// client contexts) on the control thread. A certificate that cannot be used is an error on the
// resource it came from, and only the hostnames it served lose TLS: every other one keeps its own.

#include <memory>

#include "config/diagnostic.h"
#include "config/snapshot.h"
#include "net/tls_context.h"
#include "proxy/worker.h"

namespace proxenos::app {

// How often the session-ticket keys rotate (the previous key still decrypts for one period).
inline constexpr uint64_t kTicketKeyRotationMs = 60 * 60 * 1000;

// `previous` (may be null): the runtime being replaced, whose certificates stand in for ones
// that no longer load.
std::shared_ptr<const proxy::TlsRuntime> build_tls_runtime(
    const config::Snapshot& snapshot, const std::shared_ptr<net::TicketKeys>& ticket_keys,
    const proxy::TlsRuntime* previous, config::Diagnostics& diagnostics);

}  // namespace proxenos::app
