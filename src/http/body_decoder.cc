#include "http/body_decoder.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

#include "http/header.h"

namespace proxenos::http {
namespace {

constexpr std::array<int8_t, 256> kHexValue = [] {
  std::array<int8_t, 256> t{};
  t.fill(-1);
  for (int c = '0'; c <= '9'; ++c) t[c] = static_cast<int8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) t[c] = static_cast<int8_t>(c - 'a' + 10);
  for (int c = 'A'; c <= 'F'; ++c) t[c] = static_cast<int8_t>(c - 'A' + 10);
  return t;
}();

// 16 hex digits fill 64 bits; beyond 2^63-1 a size can go negative in some other hop's parser.
constexpr uint32_t kMaxChunkSizeDigits = 16;
constexpr uint64_t kMaxChunkSize = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

}  // namespace

bool forwardable_trailer(std::string_view name) {
  if (name.empty() || name.front() == ':') return false;
  // Fields that would change framing or routing if a later hop merged trailers into the head.
  return !iequals(name, "content-length") && !iequals(name, "transfer-encoding") &&
         !iequals(name, "host");
}

void append_trailer_section(const HeaderList& trailers, std::string& out) {
  for (const HeaderField& f : trailers) {
    if (!forwardable_trailer(f.name)) continue;
    out.append(f.name);
    out.append(": ");
    out.append(f.value);
    out.append("\r\n");
  }
  out.append("\r\n");
}

void BodyDecoder::reset(BodyFraming framing, uint64_t content_length) {
  framing_ = framing;
  remaining_ = 0;
  size_digits_ = 0;
  ext_bytes_ = 0;
  trailer_bytes_ = 0;
  name_len_ = 0;
  error_ = {};
  switch (framing) {
    case BodyFraming::kNone:
      state_ = State::kDone;
      break;
    case BodyFraming::kContentLength:
      remaining_ = content_length;
      state_ = content_length == 0 ? State::kDone : State::kBody;
      break;
    case BodyFraming::kChunked:
      state_ = State::kChunkSize;
      break;
    case BodyFraming::kUntilClose:
      state_ = State::kBody;
      break;
  }
}

DecodeResult BodyDecoder::fail(DecodeResult r, std::string_view reason) {
  state_ = State::kError;
  error_ = reason;
  r.data = {};  // never hand out bytes from a stream whose framing just broke
  r.error = true;
  r.reason = reason;
  return r;
}

DecodeResult BodyDecoder::decode(std::string_view in) {
  DecodeResult r;
  switch (state_) {
    case State::kDone:
      r.done = true;
      return r;
    case State::kError:
      r.error = true;
      r.reason = error_;
      return r;
    case State::kBody:
      if (framing_ == BodyFraming::kUntilClose) {
        r.data = in;
        r.consumed = in.size();
        return r;
      }
      r.consumed = static_cast<size_t>(std::min<uint64_t>(remaining_, in.size()));
      r.data = in.substr(0, r.consumed);
      remaining_ -= r.consumed;
      if (remaining_ == 0) {
        state_ = State::kDone;
        r.done = true;
      }
      return r;
    default:
      break;
  }

  // Chunked. Framing bytes are walked one at a time (they are few); data is handed out as a view.
  // After a data span the walk goes on through the framing that follows it, so a body's last
  // bytes and its terminating "0\r\n\r\n" usually come back from the same call with done set.
  const size_t n = in.size();
  size_t p = 0;
  constexpr size_t kNoTrailers = static_cast<size_t>(-1);
  size_t trailer_start = state_ >= State::kTrailerLineStart ? 0 : kNoTrailers;
  while (p < n) {
    const unsigned char c = static_cast<unsigned char>(in[p]);
    switch (state_) {
      case State::kChunkSize: {
        const int8_t v = kHexValue[c];
        if (v >= 0) {
          if (size_digits_ == kMaxChunkSizeDigits) return fail(r, "chunk size too large");
          remaining_ = (remaining_ << 4) | static_cast<uint64_t>(v);
          ++size_digits_;
          ++p;
          break;
        }
        if (size_digits_ == 0) return fail(r, "invalid chunk size");
        if (remaining_ > kMaxChunkSize) return fail(r, "chunk size too large");
        // No whitespace before ';' or CR: strict, as llhttp without its lenient flags.
        if (c == ';') {
          state_ = State::kChunkExt;
          ext_bytes_ = 0;
        } else if (c == '\r') {
          state_ = State::kChunkSizeLf;
        } else {
          return fail(r, "invalid character after chunk size");
        }
        ++p;
        break;
      }
      case State::kChunkExt: {
        const size_t start = p;
        while (p < n && chars::kFieldValue[static_cast<unsigned char>(in[p])]) ++p;
        ext_bytes_ += static_cast<uint32_t>(std::min<size_t>(p - start, kMaxChunkExtBytes + 1));
        if (ext_bytes_ > kMaxChunkExtBytes) return fail(r, "chunk extension too long");
        if (p == n) break;
        if (in[p] != '\r') return fail(r, "invalid character in chunk extension");
        state_ = State::kChunkSizeLf;
        ++p;
        break;
      }
      case State::kChunkSizeLf:
        if (c != '\n') return fail(r, "bare CR after chunk size");
        ++p;
        if (remaining_ == 0) {
          state_ = State::kTrailerLineStart;
          trailer_bytes_ = 0;
          trailer_start = p;
        } else {
          state_ = State::kChunkData;
        }
        break;
      case State::kChunkData: {
        if (!r.data.empty()) {  // one span per call: stop before the next chunk's data
          r.consumed = p;
          return r;
        }
        const size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, n - p));
        r.data = in.substr(p, take);
        p += take;
        remaining_ -= take;
        if (remaining_ == 0) state_ = State::kChunkDataCr;
        break;
      }
      case State::kChunkDataCr:
        if (c != '\r') return fail(r, "missing CRLF after chunk data");
        state_ = State::kChunkDataLf;
        ++p;
        break;
      case State::kChunkDataLf:
        if (c != '\n') return fail(r, "missing CRLF after chunk data");
        state_ = State::kChunkSize;
        size_digits_ = 0;
        remaining_ = 0;
        ++p;
        break;
      case State::kTrailerLineStart:
      case State::kTrailerName:
      case State::kTrailerValue:
      case State::kTrailerLf:
      case State::kFinalLf: {
        if (++trailer_bytes_ > kMaxTrailerBytes) return fail(r, "trailer section too large");
        if (state_ == State::kTrailerLineStart) {
          if (c == '\r') {
            state_ = State::kFinalLf;
            ++p;
            break;
          }
          if (c == ' ' || c == '\t') return fail(r, "obs-fold in trailers");
          name_len_ = 0;
          state_ = State::kTrailerName;
        }
        if (state_ == State::kTrailerName) {
          if (chars::kToken[c]) {
            if (name_len_ < kTrailerNameProbe) {
              name_[name_len_] = static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
            }
            ++name_len_;
          } else if (c == ':' && name_len_ > 0) {
            if (name_len_ < kTrailerNameProbe &&
                !forwardable_trailer(std::string_view(name_, name_len_))) {
              return fail(r, "forbidden field in trailers");
            }
            state_ = State::kTrailerValue;
          } else if (c == ' ' || c == '\t') {
            return fail(r, "whitespace between trailer name and colon");
          } else {
            return fail(r, "invalid character in trailer name");
          }
        } else if (state_ == State::kTrailerValue) {
          if (c == '\r') {
            state_ = State::kTrailerLf;
          } else if (!chars::kFieldValue[c]) {
            return fail(r, "invalid character in trailer value");
          }
        } else if (state_ == State::kTrailerLf) {
          if (c != '\n') return fail(r, "bare CR in trailers");
          state_ = State::kTrailerLineStart;
        } else {  // kFinalLf
          if (c != '\n') return fail(r, "bare CR after trailers");
          state_ = State::kDone;
          r.done = true;
          r.consumed = p + 1;
          r.trailers = in.substr(trailer_start, r.consumed - trailer_start);
          return r;
        }
        ++p;
        break;
      }
      default:  // kBody, kDone, kError were handled above
        r.consumed = p;
        return r;
    }
  }
  r.consumed = p;
  if (trailer_start != kNoTrailers) r.trailers = in.substr(trailer_start, p - trailer_start);
  return r;
}

}  // namespace proxenos::http
