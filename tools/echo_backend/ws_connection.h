#pragma once
// WebSocket echo (RFC 6455) on a connection whose HTTP/1.1 Upgrade was accepted.
//
// Frames are echoed one by one as their bytes arrive: the header of the answer frame (same FIN,
// same opcode, same length, unmasked) goes out as soon as the client frame's header is read, and
// the payload follows as it is unmasked, so a message of any size passes through in bounded
// memory. Fragmented messages therefore come back with the same fragmentation. Ping gets a pong
// with the same payload, pong is ignored, close is answered with a close carrying the same code,
// after which the server closes the TCP connection. Protocol errors (unmasked client frame, RSV
// bits, unknown opcode, bad fragmentation, oversized or fragmented control frame, invalid close
// code) are answered with close 1002 and the connection is closed.

#include <cstdint>
#include <string>
#include <string_view>

#include "http/message_head.h"
#include "switched_connection.h"

namespace proxenos::echo {

// The answer to a WebSocket upgrade request: "101 Switching Protocols" with Sec-WebSocket-Accept
// (and the first offered subprotocol, plus any x-echo-header-<Name> headers), or an error response
// that closes the connection (400, or 426 for an unsupported Sec-WebSocket-Version). Returns true
// for 101.
bool websocket_handshake(const http::RequestHead& head, std::string* response);

// base64(SHA-1(key + RFC 6455 GUID)).
std::string websocket_accept_key(std::string_view key);

class WsConnection final : public SwitchedConnection {
 public:
  // `initial_output` holds the 101 response (and anything queued before it); `first_message`, if
  // not empty, is sent as a text message right after it.
  WsConnection(EchoServer& server, Transport transport, std::string remote,
               std::string initial_output, std::string_view first_message);

  // `initial_input`: bytes that arrived after the handshake request head.
  void start(std::string_view initial_input);

 private:
  enum class State : uint8_t { kHeader, kPayload, kClosed };

  void on_ready() override;
  void drive();
  void process(std::string_view data);
  bool parse_header();  // false on a protocol error (already answered)
  void end_frame();
  void on_control_frame();
  void append_frame_header(bool fin, uint8_t opcode, uint64_t length);
  void send_close(uint16_t code, std::string_view reason);
  void protocol_error(std::string_view reason) { send_close(1002, reason); }

  State state_ = State::kHeader;
  uint8_t header_[14] = {};
  size_t header_len_ = 0;
  bool fin_ = false;
  uint8_t opcode_ = 0;
  uint8_t mask_[4] = {};
  uint64_t payload_len_ = 0;
  uint64_t payload_done_ = 0;
  bool in_message_ = false;  // a fragmented data message is open
  std::string control_;      // payload of the control frame being read
  bool close_sent_ = false;
};

}  // namespace proxenos::echo
