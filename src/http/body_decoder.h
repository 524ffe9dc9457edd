#pragma once
// Incremental HTTP/1 body decoder: turns the bytes after a head into body data, for
// Content-Length, chunked and read-until-close framing. Strict chunk syntax (smuggling defence):
// hex size without sign or overflow, optional extensions without CTLs, CRLF only, trailers
// validated like headers (and Content-Length/Transfer-Encoding in trailers rejected).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "http/header.h"
#include "http/message_head.h"

namespace proxenos::http {

struct DecodeResult {
  size_t consumed = 0;    // input bytes used by this call
  std::string_view data;  // body bytes found (a view into the input); may be empty
  bool done = false;      // the body ended (last chunk and trailers, or CL reached)
  bool error = false;     // malformed framing; `reason` says what
  std::string_view reason;
  // Chunked: the bytes of the trailer section this call consumed (a view into the input), once
  // validated. Over the calls of one body they add up to the whole section, field lines and the
  // final CRLF ("\r\n" alone without trailers), complete when `done` is set.
  std::string_view trailers;
};

// Limits on chunk framing overhead, so a peer cannot make the decoder spin through unbounded
// non-body bytes (Go CVE-2023-39326 style) or smuggle headers through a huge trailer section.
inline constexpr size_t kMaxChunkExtBytes = 4 * 1024;  // per chunk-size line, after the ';'
inline constexpr size_t kMaxTrailerBytes = 16 * 1024;  // whole trailer section incl. final CRLF
inline constexpr size_t kTrailerNameProbe = 18;        // longest forbidden name + 1

// Appends `trailers` as a chunked trailer section (RFC 9112 §7.1.2): a "name: value" line for
// each field but those a trailer must not carry (framing, Host, pseudo-headers), then the final
// CRLF.
void append_trailer_section(const HeaderList& trailers, std::string& out);
// A trailer field that may be passed on: not a pseudo-header, and none of the fields that would
// change framing or routing if a later hop merged trailers into the head (content-length,
// transfer-encoding, host).
bool forwardable_trailer(std::string_view name);

// Trailers are validated and handed out raw (DecodeResult::trailers) for a hop that forwards
// them; they are never merged into the head.
class BodyDecoder {
 public:
  void reset(BodyFraming framing, uint64_t content_length);

  // Consumes input and returns at most one contiguous span of body data. Call again with the
  // rest of the input (in.substr(consumed)) until it consumes nothing more or reports done/error.
  // For kUntilClose every byte is data and done is never set (the caller ends at EOF).
  DecodeResult decode(std::string_view in);

  bool done() const { return state_ == State::kDone; }
  BodyFraming framing() const { return framing_; }
  uint64_t remaining() const { return remaining_; }  // for Content-Length framing

 private:
  enum class State : uint8_t {
    kBody,       // CL or until-close data
    kChunkSize,  // reading hex digits
    kChunkExt,   // after ';', until CR
    kChunkSizeLf,
    kChunkData,
    kChunkDataCr,
    kChunkDataLf,
    kTrailerLineStart,
    kTrailerName,
    kTrailerValue,
    kTrailerLf,
    kFinalLf,
    kDone,
    kError,
  };
  DecodeResult fail(DecodeResult r, std::string_view reason);

  BodyFraming framing_ = BodyFraming::kNone;
  State state_ = State::kDone;
  uint64_t remaining_ = 0;  // CL bytes left, or the current chunk's size / bytes left
  uint32_t size_digits_ = 0;
  uint32_t ext_bytes_ = 0;
  size_t trailer_bytes_ = 0;
  uint32_t name_len_ = 0;
  char name_[kTrailerNameProbe] = {};  // lower-cased start of the trailer name being read
  std::string_view error_;
};

}  // namespace proxenos::http
