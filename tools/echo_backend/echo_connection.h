#pragma once
// One accepted client connection of the echo backend: parses pipelined HTTP/1 requests, streams
// request bodies through SHA-256 without buffering them, and writes responses in request order.
//
// I/O model (edge-triggered, registered once for IN|OUT|RDHUP):
//  - reads go into the server's shared scratch buffer while the connection holds no partial
//    message; only leftovers (a partial head or chunk line, or requests queued behind a response
//    still in progress) are copied into a per-connection buffer taken from the pool.
//  - responses are appended to one output string and sent with one sendmsg per readiness, so the
//    answers to pipelined requests leave together; large pattern bodies are streamed with writev
//    straight from a static block as the socket drains (bounded memory for any size).
//  - while a response is delayed or still streaming, or too much output is queued, no further
//    request is parsed and the socket is not read: TCP back-pressure reaches the client.
//
// Protocol switches cost the HTTP/1 path one flag test per read (the HTTP/2 preface is looked
// for only in a connection's first bytes) and one per request head (Upgrade): a connection that
// starts with the preface is handed to an H2Connection, an accepted WebSocket handshake to a
// WsConnection. With TLS, recv/sendmsg become TlsStream calls; nothing else changes.

#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <string>

#include "echo_response.h"
#include "echo_server.h"
#include "http/body_decoder.h"
#include "http/http1_parser.h"
#include "http/message_head.h"
#include "net/address.h"
#include "net/buffer.h"
#include "net/event_loop.h"

namespace proxenos::echo {

class TlsStream;

class EchoConnection final : public ServerConnection {
 public:
  EchoConnection(EchoServer& server, int fd, const net::Address& peer,
                 std::unique_ptr<TlsStream> tls = nullptr);
  ~EchoConnection() override;
  EchoConnection(const EchoConnection&) = delete;
  EchoConnection& operator=(const EchoConnection&) = delete;

  void start();  // registers with the loop
  void on_io(uint32_t events) override;

 private:
  enum class Phase : uint8_t { kHead, kBody };
  enum class Ending : uint8_t {
    kNone,
    kLinger,     // response sent, write side shut: drain the client until EOF or timeout
    kResetWait,  // x-echo-partial: wait until the peer acked what we sent, then RST
  };
  enum class TimerMode : uint8_t { kDelay, kLinger, kResetWait };

  enum class Switch : uint8_t { kNone, kAnswered, kSwitched };

  void drive();
  // First bytes of the connection: the HTTP/2 preface hands the socket over. True when the caller
  // must stop: handed over (*used = all) or the preface may still be arriving (*used = 0).
  bool check_preface(std::string_view data, size_t* used);
  Switch maybe_websocket(std::string_view rest);
  void detach();  // the socket now belongs to another connection object
  void read_input();
  size_t process(std::string_view data);
  void process_buffered();
  void start_request();
  void on_body(std::string_view data);
  void end_request();
  void respond();
  void fail(int status, std::string_view reason);
  void append_simple(int status, std::string_view text, bool close);
  void start_stream(uint64_t bytes, bool chunked, bool terminate);
  void next_piece();
  bool flush();  // false when the connection was closed by a write error
  void after_output();
  bool output_pending() const { return out_pos_ < out_.size() || stream_active_; }
  bool paused() const;

  void on_timer();
  void begin_linger();
  void drain_linger();
  void check_reset_wait();
  void abort_now();  // RST
  void close_now();

  EchoServer& server_;
  net::EventLoop& loop_;
  int fd_;
  std::string remote_;
  std::unique_ptr<TlsStream> tls_;

  net::Timer timer_;
  TimerMode timer_mode_ = TimerMode::kDelay;
  uint64_t reset_deadline_ms_ = 0;

  http::RequestParser parser_;
  http::RequestHead head_;
  http::BodyDecoder decoder_;
  Phase phase_ = Phase::kHead;
  EchoControls controls_;
  uint64_t body_length_ = 0;
  bool hashing_ = false;
  EVP_MD_CTX* sha_ = nullptr;
  char sha_hex_[64] = {};

  std::unique_ptr<net::Buffer> in_;  // unprocessed input; only while some is left over
  std::string out_;                  // queued output; out_pos_ bytes of it already sent
  size_t out_pos_ = 0;

  // Streamed pattern body: stream_remaining_ bytes not yet cut into pieces, piece_left_ bytes of
  // the current piece (one chunk when chunked) not yet sent.
  bool stream_active_ = false;
  bool stream_chunked_ = false;
  bool stream_terminate_ = true;  // end with the last-chunk (false for x-echo-partial)
  bool chunk_open_ = false;       // the current chunk still needs its closing CRLF
  uint64_t stream_remaining_ = 0;
  uint64_t piece_left_ = 0;

  bool readable_ = false;  // the socket may have unread bytes (edge seen, EAGAIN not yet)
  bool rdhup_ = false;     // peer shut its side: read until 0 even after a short read
  bool peer_eof_ = false;
  bool input_pending_ = false;  // in_ holds requests not yet processed because we were paused
  bool delay_pending_ = false;
  bool closing_ = false;  // close once the queued output is sent
  bool reset_after_output_ = false;
  bool closed_ = false;
  bool fresh_ = true;  // no byte processed yet: still looking for the HTTP/2 preface
  Ending ending_ = Ending::kNone;
};

}  // namespace proxenos::echo
