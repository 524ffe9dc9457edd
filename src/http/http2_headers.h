#pragma once
// Header translation between the HTTP/1-style HeaderList the proxy works with and HTTP/2 header
// blocks (RFC 9113 §8.2–8.3), and detection of the h2c connection preface.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/header.h"

namespace proxenos::http {

// The client connection preface (RFC 9113 §3.4) that starts every HTTP/2 connection.
inline constexpr std::string_view kHttp2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

enum class PrefaceMatch : uint8_t {
  kNo,       // not HTTP/2 prior knowledge: treat as HTTP/1.x
  kPartial,  // every byte so far matches "PRI * HTTP/2", but fewer arrived: read more
  kFull,     // HTTP/2: it starts with "PRI * HTTP/2" (the rest is checked by the session)
};

// For a cleartext port serving HTTP/1.1 and h2c: look at the first bytes of a connection. An
// HTTP/1 request can never match ("PRI" is not a method we accept and the line differs by byte 4
// at the latest), so kNo comes early for HTTP/1 traffic.
PrefaceMatch match_http2_preface(std::string_view first_bytes);
inline bool is_http2_preface(std::string_view first_bytes) {
  return match_http2_preface(first_bytes) == PrefaceMatch::kFull;
}

// Connection-specific fields that HTTP/2 forbids (RFC 9113 §8.2.2): connection, keep-alive,
// proxy-connection, transfer-encoding, upgrade. `te` is allowed only as "trailers". `name` is
// compared case-insensitively.
bool is_connection_specific_header(std::string_view name);

// A field name as HTTP/2 carries it: a non-empty token without uppercase letters.
bool is_h2_field_name(std::string_view name);

// A field value without NUL, CR, LF, DEL or other control bytes but HTAB (RFC 9110 §5.5).
bool is_field_value(std::string_view value);

// ... that also neither starts nor ends with SP or HTAB, as HTTP/2 requires (RFC 9113 §8.2.1).
inline bool is_h2_field_value(std::string_view value) {
  if (!value.empty()) {
    const char first = value.front();
    const char last = value.back();
    if (first == ' ' || first == '\t' || last == ' ' || last == '\t') return false;
  }
  return is_field_value(value);
}

// Bytes appended without the zero-fill a growing std::string does first: header names and
// values, copied once as a block is assembled.
class FieldBytes {
 public:
  const char* data() const { return data_.get(); }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  void clear() { size_ = 0; }
  // Room for `n` more bytes, to be written at once: may move what is there already.
  char* extend(size_t n) {
    if (size_ + n > capacity_ || capacity_ == 0) grow(size_ + n);  // never offsets a null
    char* at = data_.get() + size_;
    size_ += n;
    return at;
  }
  void swap(FieldBytes& other) noexcept {
    data_.swap(other.data_);
    std::swap(size_, other.size_);
    std::swap(capacity_, other.capacity_);
  }
  void release() { *this = FieldBytes(); }

 private:
  void grow(size_t need);
  std::unique_ptr<char[]> data_;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

// An outgoing HTTP/2 header block being assembled: pseudo-headers first, then regular fields.
// Names and values are copied as they are added, back to back in bytes(), which a session hands
// to the stream the block belongs to (nghttp2 then uses them in place until it has sent the
// block). Reused across blocks so it stops allocating.
class H2OutFields {
 public:
  enum class Kind : uint8_t { kRequest, kResponse, kTrailers };

  void clear() {
    bytes_.clear();
    fields_.clear();
  }
  // Appends a pseudo-header as given: `name` is one of HTTP/2's, lowercase (":status").
  void add_pseudo(std::string_view name, std::string_view value);
  // Appends translated regular fields: pseudo-looking and empty names dropped, names lowercased,
  // connection-specific fields and the fields the Connection header nominates dropped, `te` kept
  // only as "te: trailers" (requests), Host dropped when `drop_host`, names or values with bytes
  // HTTP/2 forbids dropped (a header built from tainted data must not reset the stream), and
  // request cookies split into crumbs (RFC 9113 §8.2.3) so HPACK indexes each one. The first
  // `in_h2_form` fields are known to be as HTTP/2 carries them already (lowercase token names,
  // values without forbidden or edge bytes, no connection-specific fields: what an HTTP/2 peer's
  // head was checked for on arrival) and skip those checks; Host, te and cookies still apply.
  void add_fields(const HeaderList& fields, Kind kind, bool drop_host, size_t in_h2_form = 0);

  // Where a field is in bytes(): its name at `name_off`, its value right after the name.
  struct Field {
    uint32_t name_off, name_len, value_len;
    std::string_view name(const char* base) const { return {base + name_off, name_len}; }
    std::string_view value(const char* base) const {
      return {base + name_off + name_len, value_len};
    }
  };

  size_t size() const { return fields_.size(); }
  const Field& field(size_t i) const { return fields_[i]; }
  std::string_view name(size_t i) const { return fields_[i].name(bytes_.data()); }
  std::string_view value(size_t i) const { return fields_[i].value(bytes_.data()); }
  FieldBytes& bytes() { return bytes_; }

 private:
  // Inlined where it is called: per field, its own frame set-up cost as much as its copies.
  [[gnu::always_inline]] void push(std::string_view name, std::string_view value);
  void add_lowercased(std::string_view name, std::string_view value);  // name lowered
  FieldBytes bytes_;
  std::vector<Field> fields_;
};

}  // namespace proxenos::http
