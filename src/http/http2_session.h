#pragma once
// HTTP/2 codec (RFC 9113) for both ends of the proxy: the server role faces clients, the client
// role faces upstreams. nghttp2 does framing, HPACK, stream states and flow-control arithmetic;
// this class adds the edge limits of ../shared/spec/edge-hardening.md §3–4, translates header
// blocks to and from the RequestHead/ResponseHead types the HTTP/1 parser produces (so the proxy
// treats both protocols alike), and turns nghttp2's callbacks into a per-stream Handler.
//
// It knows nothing of sockets. Driving it, on one event-loop thread:
//   read:  feed(bytes). Callbacks run inside, and the answers are serialized before it returns.
//          On false: stop reading, write pending_output() once (best effort: it may hold a
//          GOAWAY) and close.
//   write: while (!(out = pending_output()).empty()) { n = send(out); consume_output(n); if short,
//          wait for writable }. Run it after every feed() and after submitting anything.
//   close: when !want_read() && !want_write() (GOAWAY exchanged and every stream done).
// Back-pressure, both directions:
//   inbound:  DATA delivered by on_data() is not acknowledged to the peer (no WINDOW_UPDATE) until
//             consume(stream, n) says those bytes were passed on; a slow receiver behind the proxy
//             therefore stalls the sender at 64 KiB per stream / 1 MiB per connection.
//   outbound: submit_data() queues body bytes per stream; the DATA frames leave as the peer's
//             windows allow. kFull asks the producer to pause; on_send_ready() says resume.
//   output:   pending_output() serializes at most about `output_buffer_limit` bytes ahead of what
//             the socket took, so a peer that stops reading holds frames inside nghttp2, where the
//             outbound frame caps turn a flood into a closed connection.
// Callbacks come from feed(), pending_output() (e.g. on_stream_close once a RST_STREAM went out,
// on_send_ready) and connection_closed(). They may call submit_*, reset_stream, consume,
// submit_goaway and terminate, but must neither destroy the session nor call connection_closed();
// feed() and pending_output() called from a callback do nothing new.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "http/header.h"
#include "http/http1_parser.h"
#include "http/http2_headers.h"
#include "http/message_head.h"

struct nghttp2_session;

namespace proxenos::http {

// RFC 9113 §7 error codes.
enum Http2ErrorCode : uint32_t {
  kH2NoError = 0x0,
  kH2ProtocolError = 0x1,
  kH2InternalError = 0x2,
  kH2FlowControlError = 0x3,
  kH2SettingsTimeout = 0x4,
  kH2StreamClosed = 0x5,
  kH2FrameSizeError = 0x6,
  kH2RefusedStream = 0x7,
  kH2Cancel = 0x8,
  kH2CompressionError = 0x9,
  kH2ConnectError = 0xa,
  kH2EnhanceYourCalm = 0xb,
  kH2InadequateSecurity = 0xc,
  kH2Http11Required = 0xd,
};

// Edge-safe defaults (edge-hardening.md §3–4). Each has a test in tests/unit/http/http2_*.
// Listener http2MaxConcurrentStreams.
inline constexpr uint32_t kH2DefaultMaxConcurrentStreams = 100;
inline constexpr uint32_t kH2DefaultInitialStreamWindow = 64 * 1024;
inline constexpr uint32_t kH2DefaultConnectionWindow = 1024 * 1024;
inline constexpr uint32_t kH2DefaultMaxFrameSize = 16 * 1024;  // RFC minimum; larger buys little
inline constexpr size_t kH2DefaultMaxOutboundFrames = 10000;
inline constexpr size_t kH2DefaultMaxOutboundControlFrames = 1000;  // PING/SETTINGS ACK, RST_STREAM
inline constexpr size_t kH2DefaultMaxSettingsEntries = 32;  // per SETTINGS frame (CVE-2020-11080)
inline constexpr size_t kH2DefaultMaxContinuations = 8;     // CONTINUATIONs per header block
inline constexpr uint32_t kH2DefaultMaxConsecutiveEmptyFrames = 1;
inline constexpr uint32_t kH2DefaultMaxPriorityFramesPerStream = 100;
inline constexpr uint32_t kH2DefaultMaxWindowUpdatesPerDataFrame = 10;
inline constexpr uint32_t kH2DefaultPrematureResetTotalStreams = 500;  // Envoy's runtime default
inline constexpr std::chrono::milliseconds kH2DefaultPrematureResetMinLifetime{1000};
inline constexpr size_t kH2DefaultStreamSendBuffer = 64 * 1024;
inline constexpr size_t kH2DefaultOutputBufferLimit = 32 * 1024;  // per-connection watermark
inline constexpr uint64_t kH2DefaultMaxDrainAfterResponse = 4 * 1024 * 1024;

struct Http2Options {
  using Clock = std::chrono::steady_clock;

  uint32_t max_concurrent_streams = kH2DefaultMaxConcurrentStreams;  // peer-opened streams
  uint32_t initial_stream_window = kH2DefaultInitialStreamWindow;
  uint32_t connection_window = kH2DefaultConnectionWindow;
  uint32_t max_frame_size = kH2DefaultMaxFrameSize;
  // Decoded header list, counted as RFC 9113 §6.5.2 does (name + value + 32 per field, pseudo-
  // headers and every cookie crumb included) and advertised as SETTINGS_MAX_HEADER_LIST_SIZE.
  // Over it, or over max_header_count regular fields (a cookie counts once): the stream is reset.
  size_t max_header_list_bytes = kDefaultMaxHeaderBytes;
  size_t max_header_count = kDefaultMaxHeaderCount;
  UnderscoreAction underscores = UnderscoreAction::kReject;  // request header names (server role)
  size_t max_outbound_frames = kH2DefaultMaxOutboundFrames;
  size_t max_outbound_control_frames = kH2DefaultMaxOutboundControlFrames;
  size_t max_settings_entries = kH2DefaultMaxSettingsEntries;
  size_t max_continuations = kH2DefaultMaxContinuations;
  uint32_t max_consecutive_empty_frames = kH2DefaultMaxConsecutiveEmptyFrames;
  uint32_t max_priority_frames_per_stream = kH2DefaultMaxPriorityFramesPerStream;
  uint32_t max_window_updates_per_data_frame = kH2DefaultMaxWindowUpdatesPerDataFrame;
  // Rapid-reset guard (CVE-2023-44487), server role: a peer stream is "premature" when it closes
  // before we submitted a response (which only a reset does: the peer's RST_STREAM, or our
  // refusal of a malformed, oversized or surplus stream) within `premature_reset_min_lifetime`
  // of opening. Once half of `premature_reset_total_streams` streams are premature (or half of
  // all closed streams, after that many closed), GOAWAY(ENHANCE_YOUR_CALM) and close, as Envoy.
  // 0 disables the guard.
  uint32_t premature_reset_total_streams = kH2DefaultPrematureResetTotalStreams;
  std::chrono::milliseconds premature_reset_min_lifetime = kH2DefaultPrematureResetMinLifetime;
  size_t stream_send_buffer = kH2DefaultStreamSendBuffer;    // submit_data() says kFull beyond
  size_t output_buffer_limit = kH2DefaultOutputBufferLimit;  // serialized, not yet written
  bool enable_connect_protocol = false;      // RFC 8441 extended CONNECT (server role)
  std::function<Clock::time_point()> clock;  // empty: steady_clock::now
  // Server role: request body bytes a client may still send on a (non-CONNECT) stream after our
  // response ended. They are delivered and acknowledged as usual, so an upload the response did
  // not wait for can finish; past this many, RST_STREAM(NO_ERROR) stops it (RFC 9113 §8.1).
  uint64_t max_drain_after_response = kH2DefaultMaxDrainAfterResponse;
};

// Counters for the proxy to export (Envoy's http2.* names in comments).
struct Http2Stats {
  uint64_t streams_opened = 0;    // peer streams (server) or our requests (client)
  uint64_t streams_refused = 0;   // over max_concurrent_streams: RST_STREAM(REFUSED_STREAM)
  uint64_t resets_received = 0;   // http2.rx_reset
  uint64_t resets_sent = 0;       // http2.tx_reset
  uint64_t premature_resets = 0;  // streams counted premature by the rapid-reset guard
  uint64_t too_many_premature_resets = 0;  // downstream_rq_too_many_premature_resets (0 or 1)
  uint64_t header_overflows = 0;           // http2.header_overflow: header list over a limit
  uint64_t messaging_errors = 0;  // http2.rx_messaging_error: malformed request/response heads
  uint64_t protocol_errors = 0;   // connection errors (we sent GOAWAY with an error code)
  uint64_t floods = 0;            // http2.outbound_flood / inbound_*_flood: closed by a flood cap
  uint64_t goaways_sent = 0;
  uint64_t goaways_received = 0;
};

// What submit_data() did with the bytes.
enum class SubmitResult : uint8_t {
  kOk,      // queued; keep producing
  kFull,    // queued, but the stream holds stream_send_buffer bytes: pause until on_send_ready
  kClosed,  // the stream is gone (reset or closed): bytes dropped, stop producing
};

// A request for the client role. Header names may be in any case; connection-specific fields
// are dropped and cookies split into crumbs (http2_headers.h).
struct Http2Request {
  std::string_view method;
  std::string_view scheme = "http";
  std::string_view authority;  // :authority (a Host header in `headers` is then dropped)
  std::string_view path;       // :path, path and query as they go upstream ("*" for OPTIONS *)
  std::string_view protocol;   // :protocol for RFC 8441 extended CONNECT, else empty
  const HeaderList* headers = nullptr;
  size_t headers_in_h2_form =
      0;  // leading `headers` known in HTTP/2 form (H2OutFields::add_fields)

  // method, :path from path and query (or target when it is origin-form), authority.
  static Http2Request from_head(const RequestHead& head, std::string_view scheme,
                                std::string& path_scratch);
};

class Http2Session {
 public:
  enum class Role : uint8_t { kServer, kClient };
  using Clock = Http2Options::Clock;

  // Per-stream events. Stream ids are the HTTP/2 ones. A stream the handler has learnt about (by
  // on_request_head in the server role, by submit_request in the client role) ends with exactly
  // one on_stream_close, unless the session is destroyed first.
  class Handler {
   public:
    virtual ~Handler() = default;

    // Server role: a complete, validated request head. Pseudo-headers are mapped (:method,
    // :path split into path/query, :authority -> authority, or Host when :authority is absent);
    // `headers` holds the regular fields with lowercase names and cookie crumbs joined by "; ".
    // framing: kNone when end_stream, kContentLength with a content-length, else kChunked (a
    // body of unknown length, to be re-chunked for an HTTP/1.1 upstream).
    // head.storage is heap-allocated, so moving the head keeps its views valid.
    virtual void on_request_head(int32_t /*stream*/, RequestHead&& /*head*/, bool /*end_stream*/) {}

    // Server role: a peer stream reset with RST_STREAM(PROTOCOL_ERROR) for its request head
    // (malformed as RFC 9113 §8.2-8.3 or our checks define it, over a header limit, an underscore
    // name under kReject) before on_request_head: called once, and nothing else follows for the
    // stream. `partial` holds what arrived before the fault: method, target/path, authority (or
    // Host) and the regular fields in order, each possibly empty; views valid during the call.
    // Not for streams refused over max_concurrent_streams (REFUSED_STREAM).
    virtual void on_request_rejected(int32_t /*stream*/, const RequestHead& /*partial*/,
                                     std::string_view /*reason*/) {}

    // Client role: a response head. 1xx heads (status < 200) may come first and end nothing;
    // the final head follows. framing as for requests (kNone for HEAD requests, 204 and 304).
    virtual void on_response_head(int32_t /*stream*/, ResponseHead&& /*head*/,
                                  bool /*end_stream*/) {}

    // Body bytes as they arrive (`bytes` valid during the call only), then one call with empty
    // bytes and end_stream = true when the body ended without trailers. Content-length has been
    // checked: a mismatch resets the stream instead (on_stream_close with PROTOCOL_ERROR).
    // Every byte delivered must eventually be consume()d (or the stream closed) to reopen the
    // peer's flow-control windows.
    virtual void on_data(int32_t stream, std::string_view bytes, bool end_stream) = 0;

    // Trailers; they end the peer's side of the stream. Views valid during the call only.
    virtual void on_trailers(int32_t /*stream*/, const HeaderList& /*trailers*/) {}

    // The peer sent RST_STREAM (on_stream_close follows with the same code).
    virtual void on_stream_reset(int32_t /*stream*/, uint32_t /*error_code*/) {}

    // The stream is gone. error_code NO_ERROR after both sides ended cleanly; anything else
    // means it was cut short (a request or response the handler saw the start of is incomplete).
    // In the client role REFUSED_STREAM means the upstream never processed it (safe to retry).
    virtual void on_stream_close(int32_t stream, uint32_t error_code) = 0;

    // The peer sent GOAWAY: streams above last_stream_id are closed with REFUSED_STREAM; open no
    // new streams on this connection (client role: drain it and dial a new one).
    virtual void on_goaway(int32_t /*last_stream_id*/, uint32_t /*error_code*/) {}

    // A stream's send queue drained below half of stream_send_buffer after kFull.
    virtual void on_send_ready(int32_t /*stream*/) {}
  };

  Http2Session(Role role, Handler& handler, const Http2Options& options = {});
  ~Http2Session();
  Http2Session(const Http2Session&) = delete;
  Http2Session& operator=(const Http2Session&) = delete;

  Role role() const { return role_; }

  // --- Bytes in and out --------------------------------------------------------------------

  // Processes bytes read from the peer (all of them; the server role expects the client
  // connection preface first). False: the connection must close (protocol error, flood, rapid
  // reset, a GOAWAY ending everything); see close_reason().
  bool feed(std::string_view bytes);

  // Bytes to write, serializing queued frames first (up to output_buffer_limit ahead). The view
  // is valid until the next call of consume_output, pending_output or any submit_*.
  std::string_view pending_output();
  void consume_output(size_t n);

  bool want_read() const;
  bool want_write() const;

  // --- Streams -----------------------------------------------------------------------------

  // Client role. Returns the new stream id, or -1 (session closing, GOAWAY received, ids
  // exhausted). end_stream: no body follows. A request beyond the peer's
  // SETTINGS_MAX_CONCURRENT_STREAMS waits inside nghttp2 until a stream closes; check
  // can_open_stream() first to spread load over connections instead.
  int32_t submit_request(const Http2Request& request, bool end_stream);

  // Server role. A status 100..199 sends an informational head (end_stream must be false);
  // otherwise the final response head. `headers` as for Http2Request (connection-specific
  // fields dropped, names lowercased; the first `in_h2_form` known in HTTP/2 form already). False
  // when the stream is gone or the call is invalid.
  bool submit_response(int32_t stream, int status, const HeaderList& headers, bool end_stream,
                       size_t in_h2_form = 0);

  // Queues body bytes (copied) for the stream; end_stream ends it after them. Allowed before the
  // head is submitted (the bytes wait).
  SubmitResult submit_data(int32_t stream, std::string_view bytes, bool end_stream);

  // Ends the stream with trailers after the queued body bytes. False when the stream already
  // ended or is gone.
  bool submit_trailers(int32_t stream, const HeaderList& trailers);

  // RST_STREAM with `error_code` (CANCEL for an abandoned stream). Server role, NO_ERROR after
  // submit_response: "stop sending me the request body" (RFC 9113 §8.1, e.g. after an early 413
  // or 401): nothing more of the request is delivered, and the RST_STREAM waits until our
  // response has been sent in full. No-op for unknown streams.
  // Without it, a request still arriving after the response ended is delivered until the
  // client's END_STREAM (bounded by max_drain_after_response); when that END_STREAM closes the
  // stream, the session makes sure a frame follows (a PING when nothing else is to be sent): curl
  // 7.88 notices a stream closed by its own END_STREAM only when input arrives, and waits for it
  // otherwise.
  void reset_stream(int32_t stream, uint32_t error_code);

  // Body bytes of `stream` queued and not yet framed (0 for unknown streams): what the peer's
  // flow-control window still holds back once the output is written.
  size_t queued_body_bytes(int32_t stream) const;

  // The handler passed these body bytes on: acknowledge them to the peer (WINDOW_UPDATE once a
  // worthwhile amount has accumulated). Ignores bytes of streams already closed (their window
  // was returned at close).
  void consume(int32_t stream, size_t bytes);

  // --- Connection --------------------------------------------------------------------------

  // Server role graceful drain, step 1: GOAWAY with the maximum stream id, so the client stops
  // opening streams while in-flight ones still arrive. Step 2 (after ~1 RTT): submit_goaway().
  void submit_shutdown_notice();
  // GOAWAY with the last stream id processed; open streams run to completion, new ones are
  // refused; want_read/want_write turn false once all are done.
  void submit_goaway(uint32_t error_code = kH2NoError);
  // GOAWAY, then close as soon as it is written (streams are abandoned).
  void terminate(uint32_t error_code, std::string_view reason);
  // The transport is gone (EOF, error, close after terminate): every stream the handler knows
  // closes now with `error_code`, and the session is done (feed false, no output).
  void connection_closed(uint32_t error_code = kH2Cancel);

  // Client role: the connection can take another stream now (no GOAWAY either way, below the
  // peer's max concurrent streams).
  bool can_open_stream() const;
  uint32_t remote_max_concurrent_streams() const;
  size_t open_streams() const { return open_streams_; }
  bool goaway_received() const { return goaway_received_; }
  // The peer's first SETTINGS frame was wholly received and applied (until then its limits are
  // the protocol defaults: unlimited streams). A frame may arrive split over several reads.
  bool remote_settings_received() const { return remote_settings_received_; }

  // Body bytes queued for the stream and not yet serialized (0 for unknown streams).
  size_t stream_send_buffered(int32_t stream) const;
  // The peer's current flow-control window for our sending on this stream (for tests/diag).
  int32_t stream_send_window(int32_t stream) const;

  const Http2Stats& stats() const { return stats_; }
  uint64_t premature_resets() const { return stats_.premature_resets; }
  // Why the connection is closing ("" while healthy): "too_many_premature_resets",
  // "flood: <which>", "bad_preface", "protocol_error: <nghttp2's message>", "goaway", ...
  std::string_view close_reason() const { return close_reason_; }

 private:
  struct Stream;
  struct Callbacks;  // the nghttp2 trampolines (http2_session.cc)
  struct Scratch;    // nghttp2 name/value arrays, reused
  friend struct Callbacks;

  Stream* find(int32_t stream) const;
  Stream* new_stream(int32_t id);
  size_t live_slot(int32_t id) const;  // live_.size() when the id has no slot
  void drop_closed_slots();
  std::unique_ptr<Stream> take_free_stream();
  Stream* add_live_stream(std::unique_ptr<Stream> st, int32_t id);
  void close_stream(Stream& st, uint32_t error_code);
  void note_closed_peer_stream(const Stream& st);
  void reject_stream(Stream& st, uint32_t error_code);
  void reject_request_head(Stream& st, std::string_view reason);
  void report_rejected(Stream& st, std::string_view reason);
  void note_peer_end(const Stream& st);
  int header_overflow(Stream& st, std::string_view reason);
  bool deliver_request_head(Stream& st, bool end_stream);
  bool deliver_response_head(Stream& st, bool end_stream);
  void keep_spares(std::string& block, HeaderList& fields);
  bool accept_response_block(Stream& st, bool end_stream);
  bool body_whole(const Stream& st) const;
  bool body_complete(Stream& st);
  void refuse_message(Stream& st);
  void refuse_body(Stream& st);
  bool accept_request_trailers(Stream& st, bool end_stream);
  void deliver_trailers(Stream& st);
  void resume(Stream& st);
  void check_outbound_limits();
  bool output_full() const;
  void flush();
  void fail(std::string_view reason, uint32_t error_code);
  void flood(std::string_view which);
  void patch_max_concurrent_streams(size_t start, size_t length);
  Clock::time_point now() const;

  Role role_;
  Handler& handler_;
  Http2Options options_;
  nghttp2_session* session_ = nullptr;

  std::string out_;  // serialized frames not yet taken by the socket
  size_t out_pos_ = 0;
  std::vector<size_t> frame_ends_;  // end offsets in out_ of the frames serialized there
  size_t frame_head_ = 0;           // frames before this index were taken by the socket
  bool patch_settings_ = false;     // the next bytes sent are our SETTINGS (see send callback)

  // Open streams by ascending id; a closed stream's slot is null until drop_closed_slots.
  std::vector<int32_t> live_ids_;
  std::vector<std::unique_ptr<Stream>> live_;
  size_t closed_slots_ = 0;
  mutable Stream* last_found_ = nullptr;  // find()'s last answer, while it is live
  std::vector<std::unique_ptr<Stream>> free_streams_;
  std::vector<int32_t> ready_;  // streams owed on_send_ready after the send pass
  std::vector<int32_t> ready_scratch_;
  H2OutFields out_fields_;  // the outgoing header block being built
  std::unique_ptr<Scratch> scratch_;
  HeaderList trailer_list_;
  // Buffers a delivered head handed back (a handler swaps its used head in for the new one):
  // the next head's field list and block are built in them instead of fresh allocations.
  HeaderList spare_fields_;
  std::string spare_block_;
  size_t open_streams_ = 0;  // streams the handler knows that are not closed
  size_t peer_streams_ = 0;  // server: accepted peer streams not closed

  // Flood accounting (Envoy's ProtocolConstraints).
  uint32_t consecutive_empty_frames_ = 0;
  uint64_t inbound_priority_frames_ = 0;
  uint64_t inbound_window_updates_ = 0;
  uint64_t outbound_data_frames_ = 0;
  uint64_t streams_started_ = 0;  // peer streams (server) or ours (client), refused ones included

  uint64_t closed_peer_streams_ = 0;  // rapid-reset guard

  bool in_recv_ = false;
  bool in_send_ = false;
  bool closing_ = false;  // a fatal error or a guard tripped: stop reading
  bool dead_ = false;     // nghttp2 can no longer send
  bool goaway_received_ = false;
  bool remote_settings_received_ = false;
  bool wake_peer_ = false;  // a client ended its request after our response: a frame must follow
  Http2Stats stats_;
  std::string close_reason_;
  std::string last_error_;  // nghttp2's last error text, for close_reason
};

}  // namespace proxenos::http
