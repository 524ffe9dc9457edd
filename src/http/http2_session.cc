#include "http/http2_session.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>

#include "base/block_pool.h"

namespace proxenos::http {
namespace {

constexpr size_t kFrameHeaderLength = 9;
constexpr uint8_t kFrameTypeSettings = 0x4;
constexpr uint16_t kSettingsMaxConcurrentStreams = 0x3;
constexpr size_t kFieldOverhead = 32;  // RFC 9113 §6.5.2 per-field cost
// A drained buffer keeps at most this much capacity, so an idle connection holds little.
constexpr size_t kKeepBufferCapacity = 16 * 1024;
// Closed streams kept for reuse with their buffers. A client session is one of a worker's few
// multiplexed upstream connections, carrying a hundred streams at once: keeping only a few
// would hand most streams' buffers back to malloc at every close.
constexpr size_t kMaxFreeServerStreams = 16;
constexpr size_t kMaxFreeClientStreams = 128;
// More than std::string's inline capacity: a head's storage must live on the heap so moving the
// head (and its string) keeps the views into it valid.
constexpr size_t kHeadStorageReserve = 512;
constexpr size_t kMaxSendHeaderBlock = 128 * 1024;
constexpr size_t kMaxErrorText = 160;

constexpr unsigned char uc(char c) {
  return static_cast<unsigned char>(c);
}

// :path bytes: VCHAR and obs-text, no '#' (same rule as the HTTP/1 request target, so an H2
// request can never become an H1 request line with a space or a fragment in it).
constexpr std::array<bool, 256> kPathChar = [] {
  std::array<bool, 256> t{};
  for (unsigned c = 0x21; c < 256; ++c) t[c] = c != 0x7f && c != '#';
  return t;
}();

// :authority / Host bytes as the HTTP/1 parser accepts them: no '@' (userinfo confuses routing).
constexpr std::array<bool, 256> kHostChar = [] {
  std::array<bool, 256> t{};
  for (unsigned c = 0; c < 256; ++c) t[c] = chars::is_alpha(c) || chars::is_digit(c);
  for (char c : std::string_view("-._~!$&'()*+,;=%:[]")) t[uc(c)] = true;
  return t;
}();

// :scheme after its first letter (RFC 3986 §3.1).
constexpr std::array<bool, 256> kSchemeChar = [] {
  std::array<bool, 256> t{};
  for (unsigned c = 0; c < 256; ++c) t[c] = chars::is_alpha(c) || chars::is_digit(c);
  for (char c : std::string_view("+-.")) t[uc(c)] = true;
  return t;
}();

bool all_of(std::string_view s, const std::array<bool, 256>& table) {
  for (char c : s) {
    if (!table[uc(c)]) return false;
  }
  return true;
}

bool parse_u64(std::string_view s, uint64_t& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

nghttp2_nv make_nv(std::string_view name, std::string_view value) {
  nghttp2_nv nv;
  nv.name = reinterpret_cast<uint8_t*>(const_cast<char*>(name.data()));
  nv.namelen = name.size();
  nv.value = reinterpret_cast<uint8_t*>(const_cast<char*>(value.data()));
  nv.valuelen = value.size();
  nv.flags = NGHTTP2_NV_FLAG_NONE;
  return nv;
}

// nghttp2's allocations (streams, queued frames, header buffers) come and go with every
// message; the worker thread's block pool serves them without the shared heap.
nghttp2_mem* pooled_mem() {
  static nghttp2_mem mem = {
      nullptr,
      [](size_t size, void*) { return base::pool_malloc(size); },
      [](void* p, void*) { base::pool_release(p); },
      [](size_t count, size_t size, void*) { return base::pool_calloc(count, size); },
      [](void* p, size_t size, void*) { return base::pool_realloc(p, size); },
  };
  return &mem;
}

// Request and trace ids differ on every message: HPACK-indexing their values only churns the
// dynamic table (an insert, an eviction and longer searches per message) for no later hit.
bool unique_per_message(std::string_view name) {
  if (name.size() < 2) return false;
  if (name.ends_with("id")) {
    return name.ends_with("request-id") || name.ends_with("requestid") ||
           name.ends_with("trace-id") || name.ends_with("traceid") || name.ends_with("span-id") ||
           name.ends_with("spanid");
  }
  return name == "traceparent" || name == "tracestate" || name == "x-cloud-trace-context" ||
         name == "b3";
}

// Their names, though, recur: a never-indexed field whose name is in the encoder's dynamic table
// refers to it by index instead of sending (and Huffman-coding) the name again. HPACK has no way
// to add a name alone, so the first such field of each name a session sends goes out indexable
// once (its value lands in the table with the name). Re-done every kReindexBlocks blocks in case
// the table evicted the entry since.
class UniqueNames {
 public:
  // Whether `name` (a unique_per_message one) goes out never-indexed; false once per name.
  bool never_index(std::string_view name) {
    for (size_t i = 0; i < count_; ++i) {
      if (names_[i] == name) return true;
    }
    if (count_ == names_.size()) return true;
    names_[count_++].assign(name);
    return false;
  }
  void next_block() {
    if (++blocks_ % kReindexBlocks == 0) count_ = 0;
  }

 private:
  static constexpr uint64_t kReindexBlocks = 4096;
  std::array<std::string, 4> names_;
  size_t count_ = 0;
  uint64_t blocks_ = 0;
};

// Where the names and values of a submitted block live until nghttp2 has sent it (or closed
// its stream). nghttp2 copies a block and lowercases every name in the copy unless a field is
// flagged NO_COPY, which then needs storage that outlives the submit call.
enum class BlockStorage : uint8_t {
  kCopiedByNghttp2,  // the fields' memory may go away after the submit call
  kOwnedByStream,    // the fields already live in the stream's own storage (trailers)
  kHandToStream,     // the fields' buffer becomes the stream's head storage (swapped, no copy)
};

// `fields` own their bytes. kHandToStream hands them to the stream (`stream_storage` takes
// them, `fields` gets the stream's old buffer to reuse); the other two leave them in `fields`.
void build_nva(H2OutFields& fields, std::vector<nghttp2_nv>& nva, UniqueNames& unique,
               BlockStorage where = BlockStorage::kCopiedByNghttp2,
               FieldBytes* stream_storage = nullptr) {
  unique.next_block();
  const size_t count = fields.size();
  nva.resize(count);
  uint8_t in_place = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE;
  const char* base = fields.bytes().data();
  if (where == BlockStorage::kCopiedByNghttp2) {
    in_place = NGHTTP2_NV_FLAG_NONE;
  } else if (where == BlockStorage::kHandToStream) {
    stream_storage->swap(fields.bytes());
    base = stream_storage->data();
  }
  for (size_t i = 0; i < count; ++i) {
    const H2OutFields::Field& f = fields.field(i);
    const std::string_view name = f.name(base);  // lowercase: H2OutFields sees to it
    nghttp2_nv& nv = nva[i];
    nv = make_nv(name, f.value(base));
    nv.flags = in_place;
    if (unique_per_message(name) && unique.never_index(name)) nv.flags |= NGHTTP2_NV_FLAG_NO_INDEX;
  }
  if (where == BlockStorage::kHandToStream) fields.clear();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Per-stream state.

struct Http2Session::Stream : base::PooledObject {
  struct Ref {
    uint32_t off = 0;
    uint32_t len = 0;
    bool set = false;
  };
  struct FieldRef {
    uint32_t name_off, name_len, value_off, value_len;
    bool cookie;
  };

  int32_t id = 0;
  Clock::time_point opened_at{};

  // The header block being received (request or response head, or trailers): names and values
  // appended to `block`, located by offsets (the string may reallocate while it grows).
  std::string block;
  std::vector<FieldRef> fields;
  Ref method, scheme, authority, path, protocol, status;
  size_t block_bytes = 0;
  size_t block_count = 0;
  size_t cookie_crumbs = 0;
  size_t cookie_bytes = 0;
  // HTTP semantics, checked here instead of by nghttp2 (check_request_field and
  // check_response_field):
  bool malformed = false;      // a field of the block being received breaks HTTP/2's rules
  bool regular_seen = false;   // the block has had a regular field (no pseudo-header after it)
  bool length_seen = false;    // ... and a content-length (requests)
  bool final_head = false;     // the final (non-1xx) response head has arrived
  int64_t body_expected = -1;  // body bytes the head announced (-1: not said)
  uint64_t body_received = 0;

  bool known = false;        // the handler knows the stream (will get on_stream_close)
  bool rejected = false;     // reset by us: whatever still arrives is dropped
  bool peer_stream = false;  // opened by the peer (server role)
  bool counted_peer = false;
  bool response_submitted = false;
  bool head_request = false;
  bool overrun = false;         // the DATA frame being received exceeds the stream window
  bool discard_input = false;   // reset_stream(NO_ERROR) pending: drop what the peer still sends
  bool rst_after_send = false;  // ... and send that RST_STREAM once our END_STREAM is out
  bool sent_end = false;        // our END_STREAM has been sent
  bool tunnel = false;          // a CONNECT request: bytes after our END_STREAM are still wanted
  uint64_t drained = 0;         // request body bytes received after our END_STREAM
  uint32_t local_reset_code = kH2NoError;
  uint64_t unconsumed = 0;  // delivered to the handler, not yet consume()d

  // Outgoing body: bytes wait here until flow control lets them out.
  std::string send_buf;
  size_t send_off = 0;
  bool provider = false;    // an nghttp2 data provider is attached
  bool deferred = false;    // ... and parked (NGHTTP2_ERR_DEFERRED) for lack of bytes
  bool send_end = false;    // nothing follows send_buf but (maybe) trailers
  bool head_ended = false;  // the head carried END_STREAM: nothing more may be sent
  bool has_trailers = false;
  bool send_full = false;  // kFull was returned; on_send_ready owed
  H2OutFields trailers;    // owned: nghttp2 uses its names and values in place
  // The names and values of our final head block (request or response), used in place by
  // nghttp2 until it sends the block or closes the stream; handed over by build_nva.
  FieldBytes out_head;

  size_t queued() const { return send_buf.size() - send_off; }

  void reset_block() {
    block.clear();
    fields.clear();
    method = scheme = authority = path = protocol = status = Ref{};
    block_bytes = block_count = cookie_crumbs = cookie_bytes = 0;
    malformed = regular_seen = length_seen = false;
  }

  void reset() {
    id = 0;
    opened_at = {};
    reset_block();
    known = rejected = peer_stream = counted_peer = response_submitted = head_request = false;
    overrun = discard_input = rst_after_send = sent_end = tunnel = false;
    drained = 0;
    final_head = false;
    body_expected = -1;
    body_received = 0;
    local_reset_code = kH2NoError;
    unconsumed = 0;
    send_buf.clear();
    send_off = 0;
    provider = deferred = send_end = head_ended = has_trailers = send_full = false;
    trailers.clear();
    out_head.clear();
  }

  std::string_view view(const Ref& r) const { return {block.data() + r.off, r.len}; }

  // Where a pseudo-header's value goes, found by length first; nullptr for an unknown one.
  Ref* pseudo_slot(std::string_view name) {
    auto is = [name](std::string_view want) {
      return std::memcmp(name.data(), want.data(), want.size()) == 0;
    };
    switch (name.size()) {
      case 5:
        return is(":path") ? &path : nullptr;
      case 7:
        if (is(":method")) return &method;
        if (is(":scheme")) return &scheme;
        return is(":status") ? &status : nullptr;
      case 9:
        return is(":protocol") ? &protocol : nullptr;
      case 10:
        return is(":authority") ? &authority : nullptr;
      default:
        return nullptr;
    }
  }
};

struct Http2Session::Scratch {
  std::vector<nghttp2_nv> nva;
  UniqueNames unique;  // the session's encoder is the one that indexes them
};

// ---------------------------------------------------------------------------------------------
// nghttp2 callbacks.

struct Http2Session::Callbacks {
  static Http2Session& self(void* user_data) { return *static_cast<Http2Session*>(user_data); }

  static ssize_t send(nghttp2_session*, const uint8_t* data, size_t length, int, void* ud) {
    Http2Session& s = self(ud);
    if (s.output_full()) return NGHTTP2_ERR_WOULDBLOCK;
    const size_t start = s.out_.size();
    s.out_.append(reinterpret_cast<const char*>(data), length);
    s.frame_ends_.push_back(s.out_.size());
    if (s.patch_settings_) {
      s.patch_settings_ = false;
      s.patch_max_concurrent_streams(start, length);
    }
    return static_cast<ssize_t>(length);
  }

  static int send_data(nghttp2_session*, nghttp2_frame* frame, const uint8_t* framehd,
                       size_t length, nghttp2_data_source*, void* ud) {
    Http2Session& s = self(ud);
    if (s.output_full()) return NGHTTP2_ERR_WOULDBLOCK;
    Stream* st = s.find(frame->hd.stream_id);
    if (st == nullptr || st->queued() < length) return NGHTTP2_ERR_CALLBACK_FAILURE;
    s.out_.append(reinterpret_cast<const char*>(framehd), kFrameHeaderLength);
    const size_t padlen = frame->data.padlen;
    if (padlen > 0) s.out_.push_back(static_cast<char>(padlen - 1));
    s.out_.append(st->send_buf, st->send_off, length);
    if (padlen > 1) s.out_.append(padlen - 1, '\0');
    s.frame_ends_.push_back(s.out_.size());
    st->send_off += length;
    if (st->send_off == st->send_buf.size()) {
      st->send_buf.clear();
      st->send_off = 0;
      if (st->send_buf.capacity() > kKeepBufferCapacity) std::string().swap(st->send_buf);
    } else if (st->send_off >= kKeepBufferCapacity && st->send_off * 2 >= st->send_buf.size()) {
      st->send_buf.erase(0, st->send_off);
      st->send_off = 0;
    }
    if (st->send_full && st->queued() <= s.options_.stream_send_buffer / 2) {
      st->send_full = false;
      s.ready_.push_back(st->id);
    }
    return 0;
  }

  // Body bytes for a DATA frame: only the length is decided here (NO_COPY); send_data copies the
  // bytes straight from the stream's queue into the output, once.
  static ssize_t read_data(nghttp2_session* session, int32_t stream_id, uint8_t*, size_t length,
                           uint32_t* data_flags, nghttp2_data_source*, void* ud) {
    Http2Session& s = self(ud);
    Stream* st = s.find(stream_id);
    if (st == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    const size_t avail = st->queued();
    const size_t n = std::min(avail, length);
    if (n == avail && st->send_end) {
      *data_flags |= NGHTTP2_DATA_FLAG_EOF;
      st->provider = false;
      if (st->has_trailers) {
        *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        build_nva(st->trailers, s.scratch_->nva, s.scratch_->unique, BlockStorage::kOwnedByStream);
        if (nghttp2_submit_trailer(session, stream_id, s.scratch_->nva.data(),
                                   s.scratch_->nva.size()) != 0) {
          return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
      }
    } else if (n == 0) {
      st->deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    if (n > 0) *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    return static_cast<ssize_t>(n);
  }

  // Inbound flood limits (Envoy's ProtocolConstraints), checked on every frame header before
  // nghttp2 spends anything on the frame.
  static int on_begin_frame(nghttp2_session*, const nghttp2_frame_hd* hd, void* ud) {
    Http2Session& s = self(ud);
    const Http2Options& o = s.options_;
    switch (hd->type) {
      case NGHTTP2_DATA:
        if (Stream* st = s.find(hd->stream_id)) {
          const int32_t window =
              nghttp2_session_get_stream_effective_local_window_size(s.session_, hd->stream_id);
          const int32_t used =
              nghttp2_session_get_stream_effective_recv_data_length(s.session_, hd->stream_id);
          st->overrun = window >= 0 && used >= 0 && int64_t{window} - used < int64_t(hd->length);
        }
        [[fallthrough]];
      case NGHTTP2_HEADERS:
      case NGHTTP2_CONTINUATION: {
        // CONTINUATION has no END_STREAM flag: bit 0 there means nothing.
        const bool end_stream =
            hd->type != NGHTTP2_CONTINUATION && (hd->flags & NGHTTP2_FLAG_END_STREAM) != 0;
        if (hd->length == 0 && !end_stream) {
          if (++s.consecutive_empty_frames_ > o.max_consecutive_empty_frames) {
            s.flood("empty frames");
            return NGHTTP2_ERR_CALLBACK_FAILURE;
          }
        } else {
          s.consecutive_empty_frames_ = 0;
        }
        break;
      }
      case NGHTTP2_PRIORITY:
        if (++s.inbound_priority_frames_ >
            uint64_t{o.max_priority_frames_per_stream} * (1 + s.streams_started_)) {
          s.flood("PRIORITY frames");
          return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        break;
      case NGHTTP2_WINDOW_UPDATE:
        if (++s.inbound_window_updates_ >
            5 + 2 * (s.streams_started_ +
                     uint64_t{o.max_window_updates_per_data_frame} * s.outbound_data_frames_)) {
          s.flood("WINDOW_UPDATE frames");
          return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        break;
      default:
        break;
    }
    return 0;
  }

  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
    Http2Session& s = self(ud);
    const int32_t id = frame->hd.stream_id;
    if (s.role_ == Role::kServer && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      Stream* st = s.new_stream(id);
      st->peer_stream = true;
      st->opened_at = s.now();
      ++s.streams_started_;
      ++s.stats_.streams_opened;
      if (s.peer_streams_ >= s.options_.max_concurrent_streams) {
        // nghttp2 would make this a connection error once our SETTINGS are acknowledged;
        // RFC 9113 §5.1.2 allows REFUSED_STREAM, which leaves the compliant streams alone.
        ++s.stats_.streams_refused;
        s.reject_stream(*st, kH2RefusedStream);
      } else {
        st->counted_peer = true;
        ++s.peer_streams_;
      }
      return 0;
    }
    if (Stream* st = s.find(id)) st->reset_block();
    return 0;
  }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name_p,
                       size_t namelen, const uint8_t* value_p, size_t valuelen, uint8_t, void* ud) {
    Http2Session& s = self(ud);
    Stream* st = s.find(frame->hd.stream_id);
    if (st == nullptr || st->rejected || st->malformed) return 0;
    const std::string_view name(reinterpret_cast<const char*>(name_p), namelen);
    const std::string_view value(reinterpret_cast<const char*>(value_p), valuelen);
    const bool pseudo = namelen > 0 && name[0] == ':';
    Stream::Ref* slot = pseudo ? st->pseudo_slot(name) : nullptr;
    if (s.role_ == Role::kClient) {
      if (!check_response_field(*st, name, value, pseudo, slot)) {
        st->malformed = true;  // the whole block is refused when it ends (on_frame_recv)
        return 0;
      }
    } else if (const char* why = check_request_field(s, *st, name, value, pseudo, slot)) {
      ++s.stats_.messaging_errors;
      s.reject_request_head(*st, why);  // with what arrived of the head before this field
      return 0;
    }

    st->block_bytes += namelen + valuelen + kFieldOverhead;
    if (st->block_bytes > s.options_.max_header_list_bytes) {
      return s.header_overflow(*st, "header list too large");
    }

    // One allocation for the whole block instead of a string doubling from 15 bytes, or none
    // when a delivered head handed its buffer back.
    if (st->block.capacity() < kHeadStorageReserve) {
      if (s.spare_block_.capacity() >= kHeadStorageReserve) {
        st->block.swap(s.spare_block_);
        st->block.clear();
      } else {
        st->block.reserve(kHeadStorageReserve);
      }
    }
    auto append = [st](std::string_view text) {
      Stream::Ref r{static_cast<uint32_t>(st->block.size()), static_cast<uint32_t>(text.size()),
                    true};
      st->block.append(text);
      return r;
    };

    if (pseudo) {
      *slot = append(value);  // unknown, duplicate and misplaced ones were refused above
      return 0;
    }

    const bool cookie = name == "cookie";
    if (cookie) {
      if (st->cookie_crumbs++ == 0) ++st->block_count;
      st->cookie_bytes += valuelen + 2;
    } else {
      ++st->block_count;
    }
    if (st->block_count > s.options_.max_header_count) {
      return s.header_overflow(*st, "too many headers");
    }

    if (s.role_ == Role::kServer && name.find('_') != std::string_view::npos) {
      switch (s.options_.underscores) {
        case UnderscoreAction::kAllow:
          break;
        case UnderscoreAction::kDropHeader:
          return 0;
        case UnderscoreAction::kReject:
          ++s.stats_.messaging_errors;
          s.reject_request_head(*st, "underscore in header name");
          return 0;
      }
    }

    const Stream::Ref n = append(name);
    const Stream::Ref v = append(value);
    st->fields.push_back({n.off, n.len, v.off, v.len, cookie});
    return 0;
  }

  // Sessions run without nghttp2's HTTP messaging checks (they cost as much as all the rest of
  // decoding a header block): the same rules, RFC 9113 §8.1-8.3, are checked here in one pass.
  // Responses: only :status, once, before any regular field and not in trailers; names in
  // lowercase; values without control bytes or edge whitespace; no connection-specific fields;
  // `te` only as "trailers".
  static bool check_response_field(Stream& st, std::string_view name, std::string_view value,
                                   bool pseudo, const Stream::Ref* slot) {
    if (pseudo) {
      return slot == &st.status && !st.status.set && !st.regular_seen && !st.final_head;
    }
    st.regular_seen = true;
    if (!is_h2_field_name(name) || !is_h2_field_value(value)) return false;
    if (name.size() == 2 && name == "te") return iequals(value, "trailers");
    return !is_connection_specific_header(name);
  }

  // Requests, likewise: a field breaking RFC 9113 §8.2-8.3 resets the stream at once, as
  // nghttp2 did; what the head as a whole must have is checked in deliver_request_head.
  // Returns why the field is refused, or nullptr.
  static const char* check_request_field(const Http2Session& s, Stream& st, std::string_view name,
                                         std::string_view value, bool pseudo,
                                         const Stream::Ref* slot) {
    if (pseudo) {
      if (st.known) return "pseudo-header in trailers";
      if (st.regular_seen) return "pseudo-header after a regular field";
      if (slot == nullptr || slot == &st.status ||
          (slot == &st.protocol && !s.options_.enable_connect_protocol)) {
        return "unknown pseudo-header";
      }
      if (slot->set) return "duplicate pseudo-header";
      bool valid = !value.empty();  // :authority's and :path's bytes: deliver_request_head
      if (slot == &st.method) {
        valid = valid && all_of(value, chars::kToken);
      } else if (slot == &st.scheme) {
        valid = valid && chars::is_alpha(uc(value[0])) && all_of(value, kSchemeChar);
      } else if (slot == &st.protocol) {
        valid = valid && is_h2_field_value(value);
      } else if (slot == &st.authority) {
        valid = true;  // an empty one is refused with the head (no authority at all)
      }
      return valid ? nullptr : "invalid pseudo-header";
    }
    st.regular_seen = true;
    if (!is_h2_field_name(name) || !is_h2_field_value(value)) {
      return "invalid header field";
    }
    if (name.size() == 2 && name == "te" && !iequals(value, "trailers")) {
      return "te other than trailers";
    }
    if (name.size() == 14 && name == "content-length") {
      if (st.length_seen) return "multiple content-length";
      st.length_seen = true;
      uint64_t n = 0;
      if (!parse_u64(value, n)) return "invalid content-length";
    }
    return is_connection_specific_header(name) ? "connection-specific header field" : nullptr;
  }

  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
    Http2Session& s = self(ud);
    const int32_t id = frame->hd.stream_id;
    switch (frame->hd.type) {
      case NGHTTP2_DATA: {
        Stream* st = s.find(id);
        if (st == nullptr || (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) break;
        if (!st->rejected && !s.body_complete(*st)) break;
        s.note_peer_end(*st);
        if (st->known && !st->rejected && !st->discard_input) s.handler_.on_data(id, {}, true);
        break;
      }
      case NGHTTP2_HEADERS: {
        Stream* st = s.find(id);
        if (st == nullptr) break;
        const bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
        if (end_stream) s.note_peer_end(*st);
        if (st->rejected || st->discard_input) break;
        if (s.role_ == Role::kServer) {
          if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
            s.deliver_request_head(*st, end_stream);
          } else if (st->known && s.accept_request_trailers(*st, end_stream)) {
            s.deliver_trailers(*st);
          }
        } else if (!s.accept_response_block(*st, end_stream)) {
          break;
        } else if (st->status.set) {
          s.deliver_response_head(*st, end_stream);
        } else {
          s.deliver_trailers(*st);
        }
        break;
      }
      case NGHTTP2_RST_STREAM: {
        ++s.stats_.resets_received;
        Stream* st = s.find(id);
        if (st != nullptr && st->known) {
          s.handler_.on_stream_reset(id, frame->rst_stream.error_code);
        }
        break;
      }
      case NGHTTP2_SETTINGS:
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) s.remote_settings_received_ = true;
        break;
      case NGHTTP2_GOAWAY:
        ++s.stats_.goaways_received;
        s.goaway_received_ = true;
        s.handler_.on_goaway(frame->goaway.last_stream_id, frame->goaway.error_code);
        break;
      default:
        break;
    }
    return 0;
  }

  static int on_data_chunk_recv(nghttp2_session* session, uint8_t, int32_t stream_id,
                                const uint8_t* data, size_t len, void* ud) {
    Http2Session& s = self(ud);
    Stream* st = s.find(stream_id);
    if (st != nullptr && st->overrun) {
      // nghttp2 reset the stream (FLOW_CONTROL_ERROR) yet still hands over the bytes; they were
      // never the peer's to send. Only the connection window counted them.
      nghttp2_session_consume_connection(session, len);
      return 0;
    }
    if (st != nullptr && st->sent_end && st->peer_stream && !st->tunnel && !st->rejected) {
      st->drained += len;
      if (st->drained > s.options_.max_drain_after_response) s.reject_stream(*st, kH2NoError);
    }
    if (st == nullptr || !st->known || st->rejected || st->discard_input) {
      // Nobody will pass these on: give the window back now.
      nghttp2_session_consume(session, stream_id, len);
      return 0;
    }
    // Body bytes no more than the head's content-length said, and in a response only after
    // the final head.
    st->body_received += len;
    const bool too_long = st->body_expected >= 0 && st->body_received > uint64_t(st->body_expected);
    if (too_long || (s.role_ == Role::kClient && !st->final_head)) {
      s.refuse_body(*st);
      nghttp2_session_consume(session, stream_id, len);
      return 0;
    }
    st->unconsumed += len;
    s.handler_.on_data(stream_id, {reinterpret_cast<const char*>(data), len}, false);
    return 0;
  }

  static int on_stream_close(nghttp2_session* session, int32_t stream_id, uint32_t error_code,
                             void* ud) {
    Http2Session& s = self(ud);
    Stream* st = s.find(stream_id);
    if (st == nullptr) return 0;
    // Bytes the handler never consumed still count against the connection window.
    if (st->unconsumed > 0) nghttp2_session_consume_connection(session, st->unconsumed);
    // A response we refused in the frame that ended it closes cleanly for nghttp2 (our
    // RST_STREAM is never sent); the handler must still learn it failed.
    if (s.role_ == Role::kClient && st->rejected && error_code == kH2NoError) {
      error_code = st->local_reset_code;
    }
    s.close_stream(*st, error_code);
    return 0;
  }

  static int on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
    Http2Session& s = self(ud);
    if ((frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
      if (Stream* st = s.find(frame->hd.stream_id)) {
        st->sent_end = true;
        if (st->rst_after_send) s.reject_stream(*st, kH2NoError);
      }
    }
    switch (frame->hd.type) {
      case NGHTTP2_DATA:
        ++s.outbound_data_frames_;
        break;
      case NGHTTP2_RST_STREAM:
        ++s.stats_.resets_sent;
        break;
      case NGHTTP2_GOAWAY:
        ++s.stats_.goaways_sent;
        if (frame->goaway.error_code != NGHTTP2_NO_ERROR) {
          ++s.stats_.protocol_errors;
          if (s.close_reason_.empty()) {
            s.close_reason_ = "protocol_error";
            if (!s.last_error_.empty()) s.close_reason_ += ": " + s.last_error_;
          }
        }
        break;
      default:
        break;
    }
    return 0;
  }

  static int before_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
    Http2Session& s = self(ud);
    if (frame->hd.type == NGHTTP2_SETTINGS && (frame->hd.flags & NGHTTP2_FLAG_ACK) == 0 &&
        s.role_ == Role::kServer) {
      s.patch_settings_ = true;
    }
    return 0;
  }

  // A request HEADERS that never left (GOAWAY received, session closing, reset before sent). If
  // nghttp2 had opened the stream it closes it itself (on_stream_close follows); otherwise only
  // we know about it.
  static int on_frame_not_send(nghttp2_session* session, const nghttp2_frame* frame, int,
                               void* ud) {
    Http2Session& s = self(ud);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    if (nghttp2_session_find_stream(session, frame->hd.stream_id) != nullptr) return 0;
    Stream* st = s.find(frame->hd.stream_id);
    if (st == nullptr) return 0;
    s.close_stream(*st, st->local_reset_code != kH2NoError ? st->local_reset_code
                                                           : uint32_t{kH2RefusedStream});
    return 0;
  }

  static int on_error(nghttp2_session*, int, const char* msg, size_t len, void* ud) {
    Http2Session& s = self(ud);
    s.last_error_.assign(msg, std::min(len, kMaxErrorText));
    return 0;
  }
};

// ---------------------------------------------------------------------------------------------

Http2Request Http2Request::from_head(const RequestHead& head, std::string_view scheme,
                                     std::string& path_scratch) {
  Http2Request r;
  r.method = head.method;
  r.scheme = scheme;
  r.authority = head.authority;
  if (!head.target.empty() && (head.target[0] == '/' || head.target == "*")) {
    r.path = head.target;
  } else {
    path_scratch.assign(head.path.empty() ? std::string_view("/") : head.path);
    if (head.has_query) {
      path_scratch.push_back('?');
      path_scratch.append(head.query);
    }
    r.path = path_scratch;
  }
  if (head.upgrade && iequals(head.method, "CONNECT")) r.protocol = head.upgrade_protocol;
  r.headers = &head.headers;
  return r;
}

Http2Session::Http2Session(Role role, Handler& handler, const Http2Options& options)
    : role_(role), handler_(handler), options_(options), scratch_(std::make_unique<Scratch>()) {
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_send_callback(cbs, &Callbacks::send);
  nghttp2_session_callbacks_set_send_data_callback(cbs, &Callbacks::send_data);
  nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, &Callbacks::on_begin_frame);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &Callbacks::on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, &Callbacks::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &Callbacks::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &Callbacks::on_data_chunk_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &Callbacks::on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, &Callbacks::on_frame_send);
  nghttp2_session_callbacks_set_before_frame_send_callback(cbs, &Callbacks::before_frame_send);
  nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, &Callbacks::on_frame_not_send);
  nghttp2_session_callbacks_set_error_callback2(cbs, &Callbacks::on_error);

  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  // Window updates follow what the proxy passed on, not what nghttp2 received.
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_no_closed_streams(opt, 1);
  nghttp2_option_set_max_outbound_ack(opt, options_.max_outbound_control_frames);
  nghttp2_option_set_max_settings(opt, options_.max_settings_entries);
  nghttp2_option_set_max_continuations(opt, options_.max_continuations);
  nghttp2_option_set_max_send_header_block_length(
      opt, std::max(kMaxSendHeaderBlock, options_.max_header_list_bytes * 2));

  // HTTP semantics are checked here (check_request_field, check_response_field and the
  // deliver_ functions) at a fraction of what nghttp2's HTTP messaging layer costs; nghttp2
  // keeps framing, HPACK, stream states and flow control.
  nghttp2_option_set_no_http_messaging(opt, 1);
  if (role_ == Role::kServer) {
    nghttp2_session_server_new3(&session_, cbs, this, opt, pooled_mem());
  } else {
    nghttp2_session_client_new3(&session_, cbs, this, opt, pooled_mem());
  }
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);

  std::array<nghttp2_settings_entry, 7> iv{};
  size_t n = 0;
  if (role_ == Role::kServer) {
    // nghttp2 learns a looser limit than the peer sees (send() rewrites the value on the wire):
    // streams over the advertised one are refused here, one by one, before nghttp2's own check
    // (a connection error) could fire. The slack is bounded by the outbound control-frame cap
    // that the refusals' RST_STREAMs count against.
    const uint64_t internal = uint64_t{options_.max_concurrent_streams} +
                              std::max<uint64_t>(options_.max_outbound_control_frames, 1);
    iv[n++] = {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
               static_cast<uint32_t>(std::min<uint64_t>(internal, 0x7fffffff))};
    if (options_.enable_connect_protocol) iv[n++] = {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1};
  } else {
    iv[n++] = {NGHTTP2_SETTINGS_ENABLE_PUSH, 0};
  }
  iv[n++] = {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, options_.initial_stream_window};
  if (options_.max_frame_size != kH2DefaultMaxFrameSize) {
    iv[n++] = {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, options_.max_frame_size};
  }
  iv[n++] = {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
             static_cast<uint32_t>(std::min<size_t>(options_.max_header_list_bytes, 0xffffffff))};
  iv[n++] = {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1};
  if (nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv.data(), n) != 0) {
    fail("settings rejected", kH2InternalError);
  }
  if (options_.connection_window > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE) {
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                          static_cast<int32_t>(options_.connection_window));
  }
}

Http2Session::~Http2Session() {
  nghttp2_session_del(session_);
}

Http2Session::Clock::time_point Http2Session::now() const {
  return options_.clock ? options_.clock() : Clock::now();
}

// ---------------------------------------------------------------------------------------------
// Stream bookkeeping. Stream ids only grow (the server role sees only client streams, the client
// role only its own), so live streams stay sorted by appending.

Http2Session::Stream* Http2Session::find(int32_t id) const {
  // Callbacks come in runs for one stream (a header block's fields, a frame's data chunks).
  if (last_found_ != nullptr && last_found_->id == id) return last_found_;
  const size_t at = live_slot(id);
  if (at == live_.size()) return nullptr;
  last_found_ = live_[at].get();  // null when that stream closed
  return last_found_;
}

size_t Http2Session::live_slot(int32_t id) const {
  // A session's stream ids go up by two, and closed slots stay until they are half of all, so
  // the slot is usually where the first id says it is.
  if (!live_ids_.empty()) {
    const int64_t guess = (static_cast<int64_t>(id) - live_ids_.front()) / 2;
    if (guess >= 0 && static_cast<size_t>(guess) < live_ids_.size() &&
        live_ids_[static_cast<size_t>(guess)] == id) {
      return static_cast<size_t>(guess);
    }
  }
  auto it = std::lower_bound(live_ids_.begin(), live_ids_.end(), id);
  if (it == live_ids_.end() || *it != id) return live_.size();
  return static_cast<size_t>(it - live_ids_.begin());
}

std::unique_ptr<Http2Session::Stream> Http2Session::take_free_stream() {
  if (free_streams_.empty()) return std::make_unique<Stream>();
  std::unique_ptr<Stream> st = std::move(free_streams_.back());
  free_streams_.pop_back();
  return st;
}

Http2Session::Stream* Http2Session::new_stream(int32_t id) {
  return add_live_stream(take_free_stream(), id);
}

Http2Session::Stream* Http2Session::add_live_stream(std::unique_ptr<Stream> st, int32_t id) {
  st->id = id;
  Stream* raw = st.get();
  auto it = std::lower_bound(live_ids_.begin(), live_ids_.end(), id);
  const auto at = it - live_ids_.begin();
  live_ids_.insert(it, id);  // the end, as ids only grow
  live_.insert(live_.begin() + at, std::move(st));
  return raw;
}

void Http2Session::close_stream(Stream& st, uint32_t error_code) {
  const int32_t id = st.id;
  if (st.peer_stream) note_closed_peer_stream(st);
  if (st.counted_peer) --peer_streams_;
  const bool known = st.known;
  std::unique_ptr<Stream> owned = std::move(live_[live_slot(id)]);
  drop_closed_slots();
  if (last_found_ == owned.get()) last_found_ = nullptr;
  if (known) --open_streams_;
  if (free_streams_.size() <
      (role_ == Role::kClient ? kMaxFreeClientStreams : kMaxFreeServerStreams)) {
    owned->reset();
    if (owned->block.capacity() > kKeepBufferCapacity) std::string().swap(owned->block);
    if (owned->send_buf.capacity() > kKeepBufferCapacity) std::string().swap(owned->send_buf);
    if (owned->out_head.capacity() > kKeepBufferCapacity) owned->out_head.release();
    free_streams_.push_back(std::move(owned));
  }
  // Last: the handler may submit more (other streams) from here.
  if (known) handler_.on_stream_close(id, error_code);
}

// A closed stream leaves an empty slot: erasing it would shift every younger stream's slot, and
// streams mostly close oldest first. Slots at the end go at once, the others in one pass when
// they are half of all.
void Http2Session::drop_closed_slots() {
  ++closed_slots_;
  while (!live_.empty() && live_.back() == nullptr) {
    live_.pop_back();
    live_ids_.pop_back();
    --closed_slots_;
  }
  if (closed_slots_ < 16 || closed_slots_ * 2 < live_.size()) return;
  size_t kept = 0;
  for (size_t i = 0; i < live_.size(); ++i) {
    if (live_[i] == nullptr) continue;
    live_[kept] = std::move(live_[i]);
    live_ids_[kept] = live_ids_[i];
    ++kept;
  }
  live_.resize(kept);
  live_ids_.resize(kept);
  closed_slots_ = 0;
}

void Http2Session::note_closed_peer_stream(const Stream& st) {
  if (options_.premature_reset_total_streams == 0) return;
  ++closed_peer_streams_;
  // Every way a stream closes before a response was submitted is a reset (ours or the peer's):
  // that, early in its life, is what a rapid-reset attack produces at scale.
  const bool premature =
      !st.response_submitted && now() - st.opened_at <= options_.premature_reset_min_lifetime;
  if (!premature) return;
  ++stats_.premature_resets;
  const uint64_t limit = options_.premature_reset_total_streams;
  const uint64_t premature_total = stats_.premature_resets;
  // Below `limit` closed streams, trip as soon as the connection could no longer stay under
  // 50 % even if every later stream were good (Envoy's maybeDrainDueToPrematureResets).
  const bool trip = closed_peer_streams_ < limit ? premature_total * 2 >= limit
                                                 : premature_total * 2 >= closed_peer_streams_;
  if (trip && !closing_) {
    stats_.too_many_premature_resets = 1;
    fail("too_many_premature_resets", kH2EnhanceYourCalm);
  }
}

void Http2Session::reject_stream(Stream& st, uint32_t error_code) {
  if (st.rejected) return;
  st.rejected = true;
  st.local_reset_code = error_code;
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, st.id, error_code);
}

// The client ended its request after our response had ended. Its END_STREAM closes the stream at
// its end as it sends it, and curl 7.88 only notices a closed stream when it reads: with nothing
// more to read it waits until its timeout. feed() sees that something follows.
void Http2Session::note_peer_end(const Stream& st) {
  if (st.peer_stream && st.sent_end && !st.rejected) wake_peer_ = true;
}

// RST_STREAM(PROTOCOL_ERROR) for a header block; a request head the handler has not seen yet is
// reported to it (the stream is still logged, as Envoy logs it).
void Http2Session::reject_request_head(Stream& st, std::string_view reason) {
  const bool report = !st.rejected && st.peer_stream && !st.known;
  reject_stream(st, kH2ProtocolError);
  if (report) report_rejected(st, reason);
}

int Http2Session::header_overflow(Stream& st, std::string_view reason) {
  ++stats_.header_overflows;
  reject_request_head(st, reason);
  st.reset_block();
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Heads.

namespace {

// Views over a received block: the fields in order, with cookie crumbs joined into one field at
// the place of the first (RFC 9113 §8.2.3), written after the block in `storage`.
template <typename FieldRefs>
void build_fields(std::string& storage, const FieldRefs& refs, size_t crumbs, size_t cookie_bytes,
                  HeaderList& out) {
  std::string_view cookie_value;
  if (crumbs > 1) {
    storage.reserve(storage.size() + cookie_bytes);
    const size_t start = storage.size();
    for (const auto& f : refs) {
      if (!f.cookie) continue;
      if (storage.size() != start) storage.append("; ");
      storage.append(storage.data() + f.value_off, f.value_len);
    }
    cookie_value = std::string_view(storage).substr(start);
  }
  const char* base = storage.data();
  out.reserve(refs.size());
  bool cookie_done = false;
  for (const auto& f : refs) {
    if (f.cookie && crumbs > 1) {
      if (!cookie_done) out.push_back({"cookie", cookie_value});
      cookie_done = true;
      continue;
    }
    out.push_back({{base + f.name_off, f.name_len}, {base + f.value_off, f.value_len}});
  }
}

}  // namespace

bool Http2Session::deliver_request_head(Stream& st, bool end_stream) {
  RequestHead head;
  head.storage = std::move(st.block);
  head.headers.swap(spare_fields_);
  head.headers.clear();
  if (head.storage.capacity() < kHeadStorageReserve) head.storage.reserve(kHeadStorageReserve);
  // Reserve before any view is taken: the joined cookie is appended after the block.
  head.storage.reserve(head.storage.size() + st.cookie_bytes);
  build_fields(head.storage, st.fields, st.cookie_crumbs, st.cookie_bytes, head.headers);
  const std::string_view storage = head.storage;
  auto view = [&](const Stream::Ref& r) { return storage.substr(r.off, r.len); };

  const char* bad = nullptr;
  head.method = view(st.method);
  const std::string_view path = view(st.path);
  const bool connect = head.method == "CONNECT";
  // What the head must have (RFC 9113 §8.3.1, RFC 8441 §4): a CONNECT only :method and
  // :authority; any other request :method, :scheme and :path, a path that starts with '/' (or
  // is "*" for OPTIONS) when the scheme is http(s); :protocol only on a CONNECT.
  if (!st.method.set) {
    bad = "missing :method";
  } else if (connect && !st.protocol.set) {
    if (st.scheme.set || st.path.set || !st.authority.set) bad = "malformed CONNECT";
  } else if (!st.scheme.set || !st.path.set) {
    bad = "missing :scheme or :path";
  } else if (st.protocol.set && (!connect || !st.authority.set)) {
    bad = "malformed extended CONNECT";
  } else if (const std::string_view scheme = view(st.scheme);
             (iequals(scheme, "http") || iequals(scheme, "https")) && path[0] != '/' &&
             !(path == "*" && head.method == "OPTIONS")) {
    bad = "invalid :path";
  }
  if (connect && !st.protocol.set) {
    head.target = view(st.authority);  // authority-form; no :path or :scheme (checked above)
  } else {
    head.target = path;
    if (!all_of(path, kPathChar)) bad = "invalid :path";
    const size_t q = path.find('?');
    head.path = path.substr(0, q);
    if (q != std::string_view::npos) {
      head.has_query = true;
      head.query = path.substr(q + 1);
    }
  }
  if (st.protocol.set) {
    head.upgrade = true;
    head.upgrade_protocol = view(st.protocol);
  }

  bool host_seen = false;
  std::string_view host;
  bool cl_seen = false;
  std::string_view cl;
  for (const HeaderField& f : head.headers) {
    if (f.name == "host") {
      if (host_seen) bad = "multiple host headers";
      host_seen = true;
      host = f.value;
    } else if (f.name == "content-length") {
      cl_seen = true;
      cl = f.value;
    } else if (f.name == "expect") {
      head.expect_continue = iequals(f.value, "100-continue");
    }
  }
  head.authority = st.authority.set ? view(st.authority) : host;
  if (head.authority.empty()) {
    bad = "missing :authority and host";
  } else if (!all_of(head.authority, kHostChar)) {
    bad = "invalid :authority";
  } else if (st.authority.set && host_seen && !iequals(host, head.authority)) {
    bad = "host does not match :authority";  // RFC 9113 §8.3.1
  }
  if (cl_seen) parse_u64(cl, head.content_length);  // its digits were checked with the field
  // A head that ends the stream has no body: a content-length may only say so.
  if (cl_seen && end_stream && head.content_length > 0 && !connect) {
    bad = "content-length without a body";
  }

  if (bad != nullptr) {
    st.reset_block();
    refuse_message(st);
    handler_.on_request_rejected(st.id, head, bad);
    keep_spares(head.storage, head.headers);
    return false;
  }
  head.version_minor = 1;
  head.version_major = 2;
  head.keep_alive = true;
  head.framing = end_stream ? BodyFraming::kNone
                            : (cl_seen ? BodyFraming::kContentLength : BodyFraming::kChunked);
  st.tunnel = connect;
  st.body_expected = cl_seen && !connect ? static_cast<int64_t>(head.content_length) : -1;
  st.known = true;
  ++open_streams_;
  st.reset_block();
  const int32_t id = st.id;
  handler_.on_request_head(id, std::move(head), end_stream);
  keep_spares(head.storage, head.headers);
  return true;
}

// A handler that took the delivered head left its last head's buffers in it (RequestHead::take):
// the block waits for the next stream that receives a head, the field list for the next head.
// Oversized buffers (one huge head) are let go.
void Http2Session::keep_spares(std::string& block, HeaderList& fields) {
  constexpr size_t kMaxSpareBlock = 16 * 1024;
  constexpr size_t kMaxSpareFields = 256;
  if (block.capacity() > spare_block_.capacity() && block.capacity() <= kMaxSpareBlock) {
    spare_block_.swap(block);
  }
  if (fields.capacity() > spare_fields_.capacity() && fields.capacity() <= kMaxSpareFields) {
    spare_fields_.swap(fields);
  }
}

// The request head received so far (the header block up to the field that was refused) for
// on_request_rejected; the block is used up.
void Http2Session::report_rejected(Stream& st, std::string_view reason) {
  RequestHead head;
  head.storage = std::move(st.block);
  head.storage.reserve(head.storage.size() + st.cookie_bytes);
  build_fields(head.storage, st.fields, st.cookie_crumbs, st.cookie_bytes, head.headers);
  const std::string_view storage = head.storage;
  auto view = [&](const Stream::Ref& r) { return storage.substr(r.off, r.len); };
  head.method = view(st.method);
  if (st.path.set) {
    head.target = view(st.path);
    const size_t q = head.target.find('?');
    head.path = head.target.substr(0, q);
    if (q != std::string_view::npos) {
      head.has_query = true;
      head.query = head.target.substr(q + 1);
    }
  } else if (head.method == "CONNECT") {
    head.target = view(st.authority);
  }
  head.authority = st.authority.set ? view(st.authority) : find_header(head.headers, "host");
  head.version_major = 2;
  head.version_minor = 1;
  st.reset_block();
  handler_.on_request_rejected(st.id, head, reason);
}

bool Http2Session::deliver_response_head(Stream& st, bool end_stream) {
  ResponseHead head;
  head.storage = std::move(st.block);
  head.headers.swap(spare_fields_);
  head.headers.clear();
  if (head.storage.capacity() < kHeadStorageReserve) head.storage.reserve(kHeadStorageReserve);
  head.storage.reserve(head.storage.size() + st.cookie_bytes);
  build_fields(head.storage, st.fields, st.cookie_crumbs, st.cookie_bytes, head.headers);
  const std::string_view status =
      std::string_view(head.storage).substr(st.status.off, st.status.len);
  uint64_t code = 0;
  bool cl_seen = false;
  // Three digits, and no 101 (RFC 9113 §8.6).
  bool bad = status.size() != 3 || !parse_u64(status, code) || code < 100 || code == 101;
  for (size_t i = 0; i < head.headers.size() && !bad; ++i) {
    const HeaderField& f = head.headers[i];
    if (f.name != "content-length") continue;
    if (code == 204 && f.value == "0" && !cl_seen) {
      // Forbidden there (RFC 9110 §8.6), yet common as "0": dropped, as nghttp2 does.
      head.headers.erase(head.headers.begin() + static_cast<std::ptrdiff_t>(i--));
      cl_seen = true;
      continue;
    }
    // One only, and none in an interim response or a 204.
    bad = cl_seen || code < 200 || code == 204 || !parse_u64(f.value, head.content_length);
    cl_seen = true;
  }
  const bool interim = code < 200;
  if (!bad && !interim) {
    st.final_head = true;
    st.body_expected = st.head_request || code == 204 || code == 304
                           ? 0
                           : (cl_seen ? static_cast<int64_t>(head.content_length) : -1);
    // A head that ends the stream announced no body, or a body of none.
    bad = end_stream && st.body_expected > 0;
  }
  if (bad) {
    st.reset_block();
    refuse_message(st);
    keep_spares(head.storage, head.headers);
    return false;
  }
  if (code == 204) cl_seen = false;
  head.status = static_cast<int>(code);
  head.version_minor = 1;
  head.keep_alive = true;
  const bool bodiless = end_stream || st.head_request || head.status < 200 || head.status == 204 ||
                        head.status == 304;
  head.framing = bodiless ? BodyFraming::kNone
                          : (cl_seen ? BodyFraming::kContentLength : BodyFraming::kChunked);
  st.reset_block();
  handler_.on_response_head(st.id, std::move(head), end_stream);
  keep_spares(head.storage, head.headers);
  return true;
}

bool Http2Session::accept_response_block(Stream& st, bool end_stream) {
  bool ok = !st.malformed;
  if (ok && st.status.set) {
    // A head, before the final one; an interim one does not end the stream.
    const std::string_view status = st.view(st.status);
    ok = !st.final_head && !(end_stream && !status.empty() && status[0] == '1');
  } else if (ok) {
    // Trailers: after the final head, ending the stream, with all the body it announced.
    ok = end_stream && st.final_head && body_whole(st);
  }
  if (!ok) {
    st.reset_block();
    refuse_message(st);
  }
  return ok;
}

bool Http2Session::body_whole(const Stream& st) const {
  return st.body_expected < 0 || st.body_received == uint64_t(st.body_expected);
}

bool Http2Session::body_complete(Stream& st) {
  if (role_ == Role::kServer) {
    if (!st.known || body_whole(st)) return true;
    refuse_body(st);
    return false;
  }
  if (st.final_head && body_whole(st)) return true;
  refuse_message(st);
  return false;
}

void Http2Session::refuse_body(Stream& st) {
  // A request body that disagrees with its content-length is not counted with the malformed
  // heads (nghttp2 never reported it as one); a response's is.
  if (role_ == Role::kClient) {
    refuse_message(st);
  } else {
    reject_stream(st, kH2ProtocolError);
  }
}

bool Http2Session::accept_request_trailers(Stream& st, bool end_stream) {
  if (!end_stream) {
    st.reset_block();
    refuse_message(st);
    return false;
  }
  if (body_whole(st)) return true;
  st.reset_block();
  refuse_body(st);
  return false;
}

// A head, trailers or response body that breaks HTTP/2's message rules: counted and reset.
void Http2Session::refuse_message(Stream& st) {
  ++stats_.messaging_errors;
  reject_stream(st, kH2ProtocolError);
}

void Http2Session::deliver_trailers(Stream& st) {
  trailer_list_.clear();
  build_fields(st.block, st.fields, st.cookie_crumbs, st.cookie_bytes, trailer_list_);
  handler_.on_trailers(st.id, trailer_list_);
  // The handler may have reset the stream (and closed it) meanwhile: look it up again.
  if (Stream* again = find(st.id)) again->reset_block();
}

// ---------------------------------------------------------------------------------------------
// Bytes in and out.

bool Http2Session::feed(std::string_view bytes) {
  if (closing_ || dead_) return false;
  in_recv_ = true;
  const ssize_t rv = nghttp2_session_mem_recv(
      session_, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  in_recv_ = false;
  if (rv < 0 && !closing_) {
    switch (rv) {
      case NGHTTP2_ERR_BAD_CLIENT_MAGIC:
        fail("bad_preface", kH2ProtocolError);
        break;
      case NGHTTP2_ERR_FLOODED:
        flood("control frames");  // PING/SETTINGS ACKs the peer never read
        break;
      default:
        fail(std::string("protocol_error: ") + nghttp2_strerror(static_cast<int>(rv)),
             kH2ProtocolError);
        break;
    }
  }
  if (closing_) return false;
  check_outbound_limits();
  if (closing_) return false;
  // Serialize now: the owner writes next anyway, and a GOAWAY nghttp2 queued for a connection
  // error only shows (want_read() turning false) once it has been sent.
  flush();
  if (wake_peer_) {
    wake_peer_ = false;
    // Any frame still to be written will do (not a WINDOW_UPDATE queued for the stream that
    // just closed: nghttp2 drops it); with none, a PING.
    if (out_pos_ == out_.size()) {
      nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, nullptr);
      flush();
    }
  }
  if (nghttp2_session_want_read(session_) == 0) {
    // nghttp2 ended the connection (it queued a GOAWAY for a protocol error) or both sides
    // said GOAWAY and no stream is left.
    closing_ = true;
    // A GOAWAY with an error code set its own reason when it was sent.
    if (close_reason_.empty()) close_reason_ = "goaway";
    return false;
  }
  return true;
}

void Http2Session::check_outbound_limits() {
  // Frames nghttp2 holds because the peer is not reading them (our output is at its limit):
  // ACKs, RST_STREAMs and WINDOW_UPDATEs provoked by the peer make up nearly all of them.
  const size_t queued = nghttp2_session_get_outbound_queue_size(session_);
  if (queued > options_.max_outbound_control_frames) {
    flood("outbound control frames");
  } else if (queued + (frame_ends_.size() - frame_head_) > options_.max_outbound_frames) {
    flood("outbound frames");
  }
}

bool Http2Session::output_full() const {
  return out_.size() - out_pos_ >= options_.output_buffer_limit;
}

void Http2Session::flush() {
  if (dead_ || in_send_ || in_recv_) return;
  // Make room at the front before appending, so the buffer does not creep forward.
  if (out_pos_ > 0 && out_pos_ * 2 >= out_.size()) {
    out_.erase(0, out_pos_);
    for (size_t i = frame_head_; i < frame_ends_.size(); ++i) frame_ends_[i] -= out_pos_;
    frame_ends_.erase(frame_ends_.begin(), frame_ends_.begin() + static_cast<long>(frame_head_));
    frame_head_ = 0;
    out_pos_ = 0;
  }
  // on_send_ready may queue more body bytes; a few rounds pick them up without recursion.
  for (int round = 0; round < 4; ++round) {
    in_send_ = true;
    const int rv = nghttp2_session_send(session_);
    in_send_ = false;
    if (rv != 0) {
      dead_ = true;
      if (!closing_) {
        closing_ = true;
        close_reason_ = std::string("send failed: ") + nghttp2_strerror(rv);
      }
      return;
    }
    if (ready_.empty()) break;
    ready_scratch_.swap(ready_);
    for (int32_t id : ready_scratch_) handler_.on_send_ready(id);
    ready_scratch_.clear();
  }
}

std::string_view Http2Session::pending_output() {
  if (out_.size() - out_pos_ < options_.output_buffer_limit) flush();
  return std::string_view(out_).substr(out_pos_);
}

void Http2Session::consume_output(size_t n) {
  out_pos_ = std::min(out_pos_ + n, out_.size());
  while (frame_head_ < frame_ends_.size() && frame_ends_[frame_head_] <= out_pos_) ++frame_head_;
  if (out_pos_ == out_.size()) {
    out_.clear();
    out_pos_ = 0;
    frame_ends_.clear();
    frame_head_ = 0;
    if (out_.capacity() > kKeepBufferCapacity) std::string().swap(out_);
  }
}

bool Http2Session::want_read() const {
  return !closing_ && !dead_ && nghttp2_session_want_read(session_) != 0;
}

bool Http2Session::want_write() const {
  return out_pos_ < out_.size() || (!dead_ && nghttp2_session_want_write(session_) != 0);
}

void Http2Session::fail(std::string_view reason, uint32_t error_code) {
  if (closing_) return;
  closing_ = true;
  close_reason_ = reason;
  if (!dead_) nghttp2_session_terminate_session(session_, error_code);
}

void Http2Session::flood(std::string_view which) {
  if (closing_) return;
  ++stats_.floods;
  fail(std::string("flood: ") + std::string(which), kH2EnhanceYourCalm);
}

void Http2Session::patch_max_concurrent_streams(size_t start, size_t length) {
  if (length < kFrameHeaderLength || uc(out_[start + 3]) != kFrameTypeSettings) return;
  const size_t payload =
      (size_t{uc(out_[start])} << 16) | (size_t{uc(out_[start + 1])} << 8) | uc(out_[start + 2]);
  const size_t end = start + std::min(length, kFrameHeaderLength + payload);
  for (size_t p = start + kFrameHeaderLength; p + 6 <= end; p += 6) {
    const uint16_t id = static_cast<uint16_t>((uc(out_[p]) << 8) | uc(out_[p + 1]));
    if (id != kSettingsMaxConcurrentStreams) continue;
    const uint32_t v = options_.max_concurrent_streams;
    out_[p + 2] = static_cast<char>(v >> 24);
    out_[p + 3] = static_cast<char>(v >> 16);
    out_[p + 4] = static_cast<char>(v >> 8);
    out_[p + 5] = static_cast<char>(v);
  }
}

// ---------------------------------------------------------------------------------------------
// Submitting.

int32_t Http2Session::submit_request(const Http2Request& request, bool end_stream) {
  if (role_ != Role::kClient || closing_ || dead_ || goaway_received_) return -1;
  if (request.method.empty()) return -1;
  const bool plain_connect = request.method == "CONNECT" && request.protocol.empty();
  out_fields_.clear();
  out_fields_.add_pseudo(":method", request.method);
  if (!plain_connect) {
    out_fields_.add_pseudo(":scheme", request.scheme);
    out_fields_.add_pseudo(":path", request.path.empty() ? std::string_view("/") : request.path);
  }
  if (!request.authority.empty()) out_fields_.add_pseudo(":authority", request.authority);
  if (!request.protocol.empty()) out_fields_.add_pseudo(":protocol", request.protocol);
  if (request.headers != nullptr) {
    out_fields_.add_fields(*request.headers, H2OutFields::Kind::kRequest,
                           !request.authority.empty(), request.headers_in_h2_form);
  }
  // The stream (with the storage the block is used from) exists before nghttp2 names its id.
  std::unique_ptr<Stream> fresh = take_free_stream();
  build_nva(out_fields_, scratch_->nva, scratch_->unique, BlockStorage::kHandToStream,
            &fresh->out_head);

  nghttp2_data_provider provider{};
  provider.read_callback = &Callbacks::read_data;
  const int32_t id =
      nghttp2_submit_request(session_, nullptr, scratch_->nva.data(), scratch_->nva.size(),
                             end_stream ? nullptr : &provider, nullptr);
  if (id < 0) {
    fresh->reset();
    free_streams_.push_back(std::move(fresh));
    return -1;
  }
  Stream* st = add_live_stream(std::move(fresh), id);
  st->known = true;
  st->provider = !end_stream;
  st->head_ended = end_stream;
  st->head_request = request.method == "HEAD";
  ++open_streams_;
  ++streams_started_;
  ++stats_.streams_opened;
  return id;
}

bool Http2Session::submit_response(int32_t stream, int status, const HeaderList& headers,
                                   bool end_stream, size_t in_h2_form) {
  if (role_ != Role::kServer || dead_) return false;
  Stream* st = find(stream);
  if (st == nullptr || !st->known || st->rejected || st->head_ended || st->response_submitted) {
    return false;
  }
  // 101 has no meaning in HTTP/2 (RFC 9113 §8.6).
  if (status < 100 || status > 999 || status == 101) return false;
  const bool informational = status < 200;
  if (informational && end_stream) return false;
  char digits[4];
  auto [p, ec] = std::to_chars(digits, digits + sizeof(digits), status);
  out_fields_.clear();
  out_fields_.add_pseudo(":status", std::string_view(digits, static_cast<size_t>(p - digits)));
  out_fields_.add_fields(headers, H2OutFields::Kind::kResponse, false, in_h2_form);
  if (informational) {
    build_nva(out_fields_, scratch_->nva,
              scratch_->unique);  // there may be several: nghttp2 copies each
    return nghttp2_submit_headers(session_, NGHTTP2_FLAG_NONE, stream, nullptr,
                                  scratch_->nva.data(), scratch_->nva.size(), nullptr) >= 0;
  }
  build_nva(out_fields_, scratch_->nva, scratch_->unique, BlockStorage::kHandToStream,
            &st->out_head);
  nghttp2_data_provider provider{};
  provider.read_callback = &Callbacks::read_data;
  if (nghttp2_submit_response(session_, stream, scratch_->nva.data(), scratch_->nva.size(),
                              end_stream ? nullptr : &provider) != 0) {
    return false;
  }
  st->response_submitted = true;
  st->provider = !end_stream;
  st->head_ended = end_stream;
  return true;
}

SubmitResult Http2Session::submit_data(int32_t stream, std::string_view bytes, bool end_stream) {
  Stream* st = find(stream);
  if (dead_ || st == nullptr || !st->known || st->rejected || st->head_ended || st->send_end) {
    return SubmitResult::kClosed;
  }
  st->send_buf.append(bytes);
  if (end_stream) st->send_end = true;
  resume(*st);
  if (st->queued() >= options_.stream_send_buffer) {
    st->send_full = true;
    return SubmitResult::kFull;
  }
  return SubmitResult::kOk;
}

bool Http2Session::submit_trailers(int32_t stream, const HeaderList& trailers) {
  Stream* st = find(stream);
  if (dead_ || st == nullptr || !st->known || st->rejected || st->head_ended || st->send_end) {
    return false;
  }
  st->trailers.clear();
  st->trailers.add_fields(trailers, H2OutFields::Kind::kTrailers, false);
  st->has_trailers = st->trailers.size() > 0;  // an empty block would be a malformed trailer
  st->send_end = true;
  resume(*st);
  return true;
}

size_t Http2Session::queued_body_bytes(int32_t stream) const {
  const Stream* st = find(stream);
  return st == nullptr ? 0 : st->queued();
}

void Http2Session::resume(Stream& st) {
  if (st.provider && st.deferred) {
    st.deferred = false;
    nghttp2_session_resume_data(session_, st.id);
  }
}

void Http2Session::reset_stream(int32_t stream, uint32_t error_code) {
  Stream* st = find(stream);
  if (st == nullptr || dead_) return;
  if (error_code == kH2NoError && role_ == Role::kServer && st->response_submitted &&
      !st->sent_end) {
    // RFC 9113 §8.1: NO_ERROR asks the client to stop sending the request once the response is
    // complete. Sent now, nghttp2 could put it ahead of our last DATA frames and cut the
    // response short; so drop input from now on and send it after our END_STREAM.
    st->discard_input = true;
    st->rst_after_send = true;
    return;
  }
  reject_stream(*st, error_code);
}

void Http2Session::consume(int32_t stream, size_t bytes) {
  Stream* st = find(stream);
  if (st == nullptr || dead_) return;
  const size_t n = static_cast<size_t>(std::min<uint64_t>(bytes, st->unconsumed));
  if (n == 0) return;
  st->unconsumed -= n;
  nghttp2_session_consume(session_, stream, n);
}

void Http2Session::submit_shutdown_notice() {
  if (role_ == Role::kServer && !dead_) nghttp2_submit_shutdown_notice(session_);
}

void Http2Session::submit_goaway(uint32_t error_code) {
  if (dead_) return;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), error_code, nullptr, 0);
}

void Http2Session::terminate(uint32_t error_code, std::string_view reason) {
  fail(reason, error_code);
}

void Http2Session::connection_closed(uint32_t error_code) {
  if (!closing_) {
    closing_ = true;
    if (close_reason_.empty()) close_reason_ = "connection closed";
  }
  dead_ = true;
  out_.clear();
  out_pos_ = 0;
  frame_ends_.clear();
  frame_head_ = 0;
  // Highest id first: close_stream erases from the back cheaply and the handler may look others up.
  while (!live_.empty()) close_stream(*live_.back(), error_code);  // no closed slot at the end
}

bool Http2Session::can_open_stream() const {
  return role_ == Role::kClient && !closing_ && !dead_ && !goaway_received_ &&
         nghttp2_session_check_request_allowed(session_) != 0 &&
         open_streams_ < remote_max_concurrent_streams();
}

uint32_t Http2Session::remote_max_concurrent_streams() const {
  return nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

size_t Http2Session::stream_send_buffered(int32_t stream) const {
  const Stream* st = find(stream);
  return st == nullptr ? 0 : st->queued();
}

int32_t Http2Session::stream_send_window(int32_t stream) const {
  return nghttp2_session_get_stream_remote_window_size(session_, stream);
}

}  // namespace proxenos::http
