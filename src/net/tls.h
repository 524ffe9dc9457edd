#pragma once
// TLS for listeners and upstream connections: contexts, SNI selection, session-ticket keys
// (net/tls_context.h) and the non-blocking stream an event loop drives (net/tls_stream.h).

#include "net/tls_context.h"   // IWYU pragma: export
#include "net/tls_settings.h"  // IWYU pragma: export
#include "net/tls_stream.h"    // IWYU pragma: export
