#include "router/route_table.h"

#include <re2/re2.h>
#include <re2/set.h>

#include <algorithm>
#include <array>
#include <bitset>
#include <cstring>
#include <map>
#include <unordered_map>
#include <utility>

namespace proxenos::router {
namespace {

// ---------------------------------------------------------------------------------------------
// ASCII helpers. Hostnames, methods and the paths we fold are compared byte-wise with ASCII
// folding only: locale-aware folding would be slower and differ from Envoy.

constexpr char fold(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (fold(a[i]) != fold(b[i])) return false;
  }
  return true;
}

bool equals(std::string_view a, std::string_view b, bool icase) {
  return icase ? iequals(a, b) : a == b;
}

bool starts_with(std::string_view s, std::string_view p, bool icase) {
  return s.size() >= p.size() && equals(s.substr(0, p.size()), p, icase);
}

bool ends_with(std::string_view s, std::string_view p, bool icase) {
  return s.size() >= p.size() && equals(s.substr(s.size() - p.size()), p, icase);
}

// Folds eight ASCII bytes to lower case at once: a byte gets 0x20 added when it lies in 'A'..'Z'.
inline uint64_t fold8(uint64_t x) {
  constexpr uint64_t kLow7 = 0x7f7f7f7f7f7f7f7full;
  constexpr uint64_t kHigh = 0x8080808080808080ull;
  uint64_t low7 = x & kLow7;
  uint64_t above_z = low7 + 0x2525252525252525ull;  // high bit set when byte > 'Z'
  uint64_t from_a = low7 + 0x3f3f3f3f3f3f3f3full;   // high bit set when byte >= 'A'
  uint64_t upper = from_a & ~above_z & ~x & kHigh;
  return x | (upper >> 2);
}

// Case-insensitive hash, eight bytes per step. The keys hashed here (hostnames, exact paths) come
// from configuration; requests only look them up, so a fast non-keyed hash cannot be flooded.
struct CiHash {
  size_t operator()(std::string_view s) const noexcept {
    constexpr uint64_t kMul = 0x9e3779b97f4a7c15ull;
    uint64_t h = s.size() * kMul;
    size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
      uint64_t word;
      std::memcpy(&word, s.data() + i, 8);
      h = (h ^ fold8(word)) * kMul;
      h ^= h >> 29;
    }
    if (i < s.size()) {
      uint64_t word = 0;
      std::memcpy(&word, s.data() + i, s.size() - i);
      h = (h ^ fold8(word)) * kMul;
      h ^= h >> 29;
    }
    return static_cast<size_t>(h);
  }
};

struct CiEq {
  bool operator()(std::string_view a, std::string_view b) const noexcept { return iequals(a, b); }
};

// Keys are views into strings owned by the table (host specs, routes), which never move.
using CiIndexMap = std::unordered_map<std::string_view, uint32_t, CiHash, CiEq>;

// Case-insensitive name -> host index; the first name added wins. Deployments have a handful of
// Hosts, where comparing lengths and then bytes beats hashing, so the map is used past 8 only.
class HostNameIndex {
 public:
  void add(std::string_view name, uint32_t host) {
    if (find(name) >= 0) return;
    list_.emplace_back(name, host);
    map_.emplace(name, host);
  }
  int64_t find(std::string_view name) const {
    if (list_.size() <= kLinearMax) {
      for (const auto& [key, host] : list_) {
        if (key.size() == name.size() && iequals(key, name)) return host;
      }
      return -1;
    }
    auto it = map_.find(name);
    return it == map_.end() ? -1 : static_cast<int64_t>(it->second);
  }
  bool empty() const { return list_.empty(); }

 private:
  static constexpr size_t kLinearMax = 8;
  std::vector<std::pair<std::string_view, uint32_t>> list_;
  CiIndexMap map_;
};

struct HostPort {
  std::string_view host;
  bool has_port = false;
};

// Splits a `:port` suffix off an authority. A bracketed IPv6 literal keeps its inner colons; an
// unbracketed name with several colons is a bare IPv6 address and has no port.
HostPort split_port(std::string_view authority) {
  size_t colon = authority.rfind(':');
  if (colon == std::string_view::npos) return {authority, false};
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.rfind(']');
    if (close == std::string_view::npos || colon < close) return {authority, false};
  } else if (authority.find(':') != colon) {
    return {authority, false};
  }
  for (size_t i = colon + 1; i < authority.size(); ++i) {
    if (authority[i] < '0' || authority[i] > '9') return {authority, false};
  }
  return {authority.substr(0, colon), true};
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Reads one percent-decoded byte at `*i`, advancing it. Malformed escapes stay literal and '+'
// stays '+' (Envoy's query matching does not treat '+' as a space either).
char next_decoded(std::string_view raw, size_t* i) {
  char c = raw[*i];
  if (c == '%' && *i + 2 < raw.size()) {
    int hi = hex_value(raw[*i + 1]);
    int lo = hex_value(raw[*i + 2]);
    if (hi >= 0 && lo >= 0) {
      *i += 3;
      return static_cast<char>(hi * 16 + lo);
    }
  }
  *i += 1;
  return c;
}

bool decoded_equals(std::string_view raw, std::string_view expected) {
  size_t i = 0;
  size_t j = 0;
  while (i < raw.size()) {
    if (j == expected.size() || next_decoded(raw, &i) != expected[j]) return false;
    ++j;
  }
  return j == expected.size();
}

// Decodes into `scratch` only when there is something to decode.
std::string_view decode_component(std::string_view raw, std::string* scratch) {
  if (raw.find('%') == std::string_view::npos) return raw;
  scratch->clear();
  for (size_t i = 0; i < raw.size();) scratch->push_back(next_decoded(raw, &i));
  return *scratch;
}

// ---------------------------------------------------------------------------------------------
// String predicates.

bool string_matches(const StringMatcher& m, std::string_view value) {
  switch (m.kind) {
    case StringMatchKind::kExact:
      return equals(value, m.value, m.ignore_case);
    case StringMatchKind::kPresent:
    case StringMatchKind::kAny:
      return true;
    case StringMatchKind::kRegex:
      // A matcher without a compiled regex fails closed: it cannot be evaluated.
      return m.regex && RE2::FullMatch(value, *m.regex);
    case StringMatchKind::kPrefix:
      return starts_with(value, m.value, m.ignore_case);
    case StringMatchKind::kSuffix:
      return ends_with(value, m.value, m.ignore_case);
  }
  return false;
}

// `:authority` predicates are always case-insensitive (DNS names are) and compare against the
// authority without its port unless the matcher itself names a port. Glob-derived prefix and
// suffix matchers need the wildcard to cover at least one character, as Envoy's domains do. A
// regex is tried on the authority as sent and, failing that, without its port, so `host_regex`
// patterns written for bare names keep working behind non-default ports.
bool authority_matches(const StringMatcher& m, std::string_view authority) {
  switch (m.kind) {
    case StringMatchKind::kAny:
    case StringMatchKind::kPresent:
      return true;
    case StringMatchKind::kRegex: {
      if (!m.regex) return false;
      if (RE2::FullMatch(authority, *m.regex)) return true;
      HostPort hp = split_port(authority);
      return hp.has_port && RE2::FullMatch(hp.host, *m.regex);
    }
    case StringMatchKind::kExact:
    case StringMatchKind::kPrefix:
    case StringMatchKind::kSuffix:
      break;
  }
  std::string_view subject = split_port(m.value).has_port ? authority : split_port(authority).host;
  switch (m.kind) {
    case StringMatchKind::kExact:
      return iequals(subject, m.value);
    case StringMatchKind::kPrefix:
      return subject.size() > m.value.size() && starts_with(subject, m.value, true);
    case StringMatchKind::kSuffix:
      return subject.size() > m.value.size() && ends_with(subject, m.value, true);
    default:
      return false;
  }
}

// Finds a request header by case-insensitive name. A header sent several times is matched as
// its values joined with "," in arrival order (Envoy's rule for multi-valued header matching);
// the join is built in a per-thread buffer only in that case.
bool find_header_joined(const http::HeaderList* headers, std::string_view name,
                        std::string_view* value) {
  if (headers == nullptr) return false;
  thread_local std::string joined;
  bool found = false;
  bool is_joined = false;
  for (const http::HeaderField& field : *headers) {
    if (!iequals(field.name, name)) continue;
    if (!found) {
      *value = field.value;
      found = true;
      continue;
    }
    if (!is_joined) {
      joined.assign(value->data(), value->size());
      is_joined = true;
    }
    joined.push_back(',');
    joined.append(field.value.data(), field.value.size());
    *value = joined;
  }
  return found;
}

bool header_matches(const HeaderMatcher& hm, const RequestView& request) {
  if (!hm.name.empty() && hm.name.front() == ':') {
    if (hm.name == ":authority") return authority_matches(hm.match, request.authority);
    if (hm.name == ":method") return string_matches(hm.match, request.method);
  }
  std::string_view value;
  if (!find_header_joined(request.headers, hm.name, &value)) return false;
  return string_matches(hm.match, value);
}

// The first occurrence of the parameter decides; names compare after percent-decoding.
bool query_matches(const QueryMatcher& qm, std::string_view query) {
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t amp = query.find('&', pos);
    if (amp == std::string_view::npos) amp = query.size();
    std::string_view pair = query.substr(pos, amp - pos);
    pos = amp + 1;
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string_view raw_name = pair.substr(0, eq);
    if (!decoded_equals(raw_name, qm.name)) continue;
    if (qm.match.kind == StringMatchKind::kPresent || qm.match.kind == StringMatchKind::kAny) {
      return true;
    }
    std::string_view raw_value =
        eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    thread_local std::string scratch;
    return string_matches(qm.match, decode_component(raw_value, &scratch));
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Candidate lists: sorted runs of route indexes, merged lazily in ascending order.

struct Cursor {
  const uint32_t* next;
  const uint32_t* end;
  bool verify_path;  // the index did not prove the path matches: run the route regex
};

// A handful of runs per request (one per matching trie node, exact entry and regex set); kept
// inline so the common case allocates nothing.
class CursorList {
 public:
  void push(const uint32_t* begin, const uint32_t* end, bool verify_path) {
    if (begin == end) return;
    if (spill_.empty() && size_ < inline_.size()) {
      inline_[size_++] = Cursor{begin, end, verify_path};
      return;
    }
    if (spill_.empty()) spill_.assign(inline_.begin(), inline_.begin() + size_);
    spill_.push_back(Cursor{begin, end, verify_path});
  }
  Cursor* data() { return spill_.empty() ? inline_.data() : spill_.data(); }
  size_t size() const { return spill_.empty() ? size_ : spill_.size(); }

 private:
  std::array<Cursor, 40> inline_;
  size_t size_ = 0;
  std::vector<Cursor> spill_;
};

struct IndexSpan {
  uint32_t begin = 0;
  uint32_t count = 0;
};

// ---------------------------------------------------------------------------------------------
// Radix tree over prefix strings. Walking a path visits at most one node per label, so the cost
// depends on the path and the tree depth, not on the number of routes.

class RadixTree {
 public:
  void insert(std::string_view key, uint32_t route) {
    if (build_.empty()) build_.emplace_back();
    uint32_t node = 0;
    size_t pos = 0;
    while (true) {
      if (pos == key.size()) {
        build_[node].routes.push_back(route);
        return;
      }
      uint8_t byte = static_cast<uint8_t>(key[pos]);
      std::vector<uint32_t>& children = build_[node].children;
      auto it = std::lower_bound(children.begin(), children.end(), byte,
                                 [this](uint32_t child, uint8_t b) {
                                   return static_cast<uint8_t>(build_[child].label[0]) < b;
                                 });
      size_t slot = static_cast<size_t>(it - children.begin());
      if (it == children.end() || static_cast<uint8_t>(build_[*it].label[0]) != byte) {
        uint32_t fresh = static_cast<uint32_t>(build_.size());
        children.insert(it, fresh);  // before emplace_back: `children` refers into build_
        BuildNode leaf;
        leaf.label.assign(key.substr(pos));
        leaf.routes.push_back(route);
        build_.push_back(std::move(leaf));
        return;
      }
      uint32_t child = *it;
      const std::string& label = build_[child].label;
      std::string_view rest = key.substr(pos);
      size_t common = 0;
      while (common < label.size() && common < rest.size() && label[common] == rest[common]) {
        ++common;
      }
      if (common == label.size()) {
        node = child;
        pos += common;
        continue;
      }
      BuildNode mid;
      mid.label = label.substr(0, common);
      mid.children.push_back(child);
      build_[child].label.erase(0, common);
      uint32_t mid_index = static_cast<uint32_t>(build_.size());
      build_.push_back(std::move(mid));
      build_[node].children[slot] = mid_index;
      node = mid_index;
      pos += common;
    }
  }

  // Flattens the tree in breadth-first order so that every node's children are contiguous and
  // a child is found by scanning their first bytes, with no further indirection. Route runs are
  // appended to `pool`.
  void freeze(std::vector<uint32_t>* pool) {
    if (build_.empty()) return;
    std::vector<uint32_t> order{0};  // flat position -> build node
    for (size_t head = 0; head < order.size(); ++head) {
      for (uint32_t c : build_[order[head]].children) order.push_back(c);
    }
    nodes_.resize(order.size());
    first_bytes_.resize(order.size());
    uint32_t next_child = 1;
    for (size_t i = 0; i < order.size(); ++i) {
      const BuildNode& b = build_[order[i]];
      Node& n = nodes_[i];
      n.label_off = static_cast<uint32_t>(labels_.size());
      n.label_len = static_cast<uint32_t>(b.label.size());
      labels_ += b.label;
      first_bytes_[i] = b.label.empty() ? 0 : b.label[0];
      n.child_begin = next_child;
      n.child_count = static_cast<uint32_t>(b.children.size());
      next_child += n.child_count;
      n.routes_begin = static_cast<uint32_t>(pool->size());
      n.routes_count = static_cast<uint32_t>(b.routes.size());
      pool->insert(pool->end(), b.routes.begin(), b.routes.end());
    }
    build_.clear();
    build_.shrink_to_fit();
  }

  // Pushes the route runs of every node whose key is a prefix of `path`, shortest first.
  // kFold: keys were lower-cased at insert, the path is folded while walking.
  template <bool kFold>
  void walk(std::string_view path, const uint32_t* pool, bool verify_path, CursorList* out) const {
    if (nodes_.empty()) return;
    const Node* nodes = nodes_.data();
    const char* first = first_bytes_.data();
    const char* labels = labels_.data();
    const Node* node = nodes;
    emit(*node, pool, verify_path, out);
    size_t pos = 0;
    while (pos < path.size() && node->child_count != 0) {
      char c = kFold ? fold(path[pos]) : path[pos];
      uint32_t i = find_child(first, node->child_begin, node->child_count, c);
      if (i == kNoChild) return;
      const Node* child = nodes + i;
      if (path.size() - pos < child->label_len) return;
      const char* label = labels + child->label_off;
      for (uint32_t k = 1; k < child->label_len; ++k) {
        char p = kFold ? fold(path[pos + k]) : path[pos + k];
        if (p != label[k]) return;
      }
      pos += child->label_len;
      node = child;
      emit(*node, pool, verify_path, out);
    }
  }

 private:
  struct BuildNode {
    std::string label;
    std::vector<uint32_t> children;  // sorted by first label byte
    std::vector<uint32_t> routes;    // ascending route index
  };
  struct Node {
    uint32_t label_off = 0;
    uint32_t label_len = 0;
    uint32_t child_begin = 0;
    uint32_t child_count = 0;
    uint32_t routes_begin = 0;
    uint32_t routes_count = 0;
  };

  static constexpr uint32_t kNoChild = ~uint32_t{0};

  // Children are usually few (digits, letters) and the scan's branches predict
  // well; a 16-byte SIMD compare measured slower here because it serialises each level.
  static uint32_t find_child(const char* first, uint32_t begin, uint32_t count, char c) {
    for (uint32_t i = begin; i < begin + count; ++i) {
      if (first[i] == c) return i;
    }
    return kNoChild;
  }

  static void emit(const Node& node, const uint32_t* pool, bool verify_path, CursorList* out) {
    if (node.routes_count != 0) {
      out->push(pool + node.routes_begin, pool + node.routes_begin + node.routes_count,
                verify_path);
    }
  }

  std::vector<BuildNode> build_;
  std::vector<Node> nodes_;        // breadth-first: a node's children are contiguous
  std::vector<char> first_bytes_;  // first label byte per node, parallel to nodes_
  std::string labels_;
};

// Regex routes whose RE2 options parse identically share one anchored RE2::Set, so one DFA pass
// finds every regex route matching the path.
struct RegexGroup {
  std::unique_ptr<RE2::Set> set;
  std::vector<uint32_t> routes;  // set index -> route index, ascending
};

constexpr int64_t kRegexSetMaxMem = int64_t{64} << 20;
constexpr size_t kMinRegexLiteral = 2;       // "/" alone filters nothing
constexpr size_t kMaxRegexesPerLiteral = 4;  // beyond this one set pass is cheaper
constexpr int kMaxRegexLiteral = 64;

// The literal every anchored match of `re` starts with: the common prefix of RE2's possible
// match range (any match lies between min and max, so it starts with what they share).
std::string literal_prefix(const RE2& re) {
  std::string min;
  std::string max;
  if (!re.PossibleMatchRange(&min, &max, kMaxRegexLiteral)) return {};
  size_t n = 0;
  while (n < min.size() && n < max.size() && min[n] == max[n]) ++n;
  min.resize(n);
  return min;
}

struct VHostIndex {
  std::vector<const Route*> routes;
  std::vector<const RE2*> path_regex;  // per route; kRegex routes only
  std::vector<std::unique_ptr<RE2>> owned_regex;
  std::vector<uint32_t> pool;
  RadixTree prefix_cs;
  RadixTree prefix_ci;      // keys lower-cased
  RadixTree regex_literal;  // regex routes by the literal every match starts with
  std::unordered_map<std::string_view, IndexSpan> exact_cs;
  std::unordered_map<std::string_view, IndexSpan, CiHash, CiEq> exact_ci;
  // Lengths of the exact paths: most requests skip hashing the path when none has their length.
  std::bitset<256> exact_lengths;
  bool exact_long = false;
  bool may_be_exact(size_t len) const {
    return len < exact_lengths.size() ? exact_lengths.test(len) : exact_long;
  }
  std::vector<RegexGroup> regex_groups;
  size_t regex_route_count = 0;
  std::vector<uint32_t> always;  // regexes no set could take: path checked per route
};

template <typename Map>
void freeze_exact(const std::vector<std::pair<std::string_view, std::vector<uint32_t>>>& runs,
                  Map* map, std::vector<uint32_t>* pool) {
  for (const auto& [key, routes] : runs) {
    IndexSpan span{static_cast<uint32_t>(pool->size()), static_cast<uint32_t>(routes.size())};
    pool->insert(pool->end(), routes.begin(), routes.end());
    map->emplace(key, span);
  }
}

template <typename Hash, typename Eq>
void collect_exact(std::string_view key, uint32_t route,
                   std::unordered_map<std::string_view, size_t, Hash, Eq>* slots,
                   std::vector<std::pair<std::string_view, std::vector<uint32_t>>>* runs) {
  auto [it, inserted] = slots->emplace(key, runs->size());
  if (inserted) runs->emplace_back(key, std::vector<uint32_t>{});
  (*runs)[it->second].second.push_back(route);
}

VHostIndex index_routes(const VirtualHostSpec& spec) {
  VHostIndex vx;
  std::unordered_map<std::string_view, size_t> exact_cs_slots;
  std::unordered_map<std::string_view, size_t, CiHash, CiEq> exact_ci_slots;
  std::vector<std::pair<std::string_view, std::vector<uint32_t>>> exact_cs_runs;
  std::vector<std::pair<std::string_view, std::vector<uint32_t>>> exact_ci_runs;
  std::map<std::pair<int, int>, size_t> group_of_options;
  std::vector<RE2::Options> group_options;
  std::vector<std::vector<std::pair<uint32_t, const RE2*>>> group_members;
  std::vector<std::pair<uint32_t, const RE2*>> regex_routes;

  for (const std::shared_ptr<const Route>& route : spec.routes) {
    if (!route) continue;
    uint32_t index = static_cast<uint32_t>(vx.routes.size());
    vx.routes.push_back(route.get());
    vx.path_regex.push_back(nullptr);
    const PathMatch& path = route->path;
    switch (path.kind) {
      case PathMatchKind::kPrefix:
        if (path.case_sensitive) {
          vx.prefix_cs.insert(path.value, index);
        } else {
          std::string lower(path.value);
          for (char& c : lower) c = fold(c);
          vx.prefix_ci.insert(lower, index);
        }
        break;
      case PathMatchKind::kExact:
        if (path.case_sensitive) {
          collect_exact(path.value, index, &exact_cs_slots, &exact_cs_runs);
        } else {
          collect_exact(path.value, index, &exact_ci_slots, &exact_ci_runs);
        }
        break;
      case PathMatchKind::kRegex: {
        const RE2* re = path.regex.get();
        if (re == nullptr) {
          // The compiler normally hands over a compiled regex; compile one if it did not.
          RE2::Options options;
          options.set_log_errors(false);
          options.set_case_sensitive(path.case_sensitive);
          auto owned = std::make_unique<RE2>(path.value, options);
          if (!owned->ok()) break;  // an invalid pattern matches nothing
          re = owned.get();
          vx.owned_regex.push_back(std::move(owned));
        }
        if (!re->ok()) break;
        vx.path_regex[index] = re;
        regex_routes.emplace_back(index, re);
        break;
      }
    }
  }

  // Regexes that start with a literal of some length are filed under it in a trie and checked
  // one by one when the path starts with it; that keeps the usual `/api/v[0-9]+/...` patterns off
  // the per-request set pass. Literals shared by many regexes, and regexes with no useful
  // literal, go to the RE2::Set instead, so a single path never checks many regexes one by one.
  std::vector<std::string> literals(regex_routes.size());
  std::unordered_map<std::string, size_t> literal_use;
  for (size_t i = 0; i < regex_routes.size(); ++i) {
    literals[i] = literal_prefix(*regex_routes[i].second);
    if (literals[i].size() >= kMinRegexLiteral) ++literal_use[literals[i]];
  }
  for (size_t i = 0; i < regex_routes.size(); ++i) {
    auto [index, re] = regex_routes[i];
    if (literals[i].size() >= kMinRegexLiteral &&
        literal_use[literals[i]] <= kMaxRegexesPerLiteral) {
      vx.regex_literal.insert(literals[i], index);
      continue;
    }
    std::pair<int, int> key{re->options().ParseFlags(), static_cast<int>(re->options().encoding())};
    auto [it, inserted] = group_of_options.emplace(key, group_options.size());
    if (inserted) {
      group_options.push_back(re->options());
      group_members.emplace_back();
    }
    group_members[it->second].emplace_back(index, re);
  }

  vx.prefix_cs.freeze(&vx.pool);
  vx.prefix_ci.freeze(&vx.pool);
  vx.regex_literal.freeze(&vx.pool);
  for (const auto* runs : {&exact_cs_runs, &exact_ci_runs}) {
    for (const auto& run : *runs) {
      if (run.first.size() < vx.exact_lengths.size()) {
        vx.exact_lengths.set(run.first.size());
      } else {
        vx.exact_long = true;
      }
    }
  }
  freeze_exact(exact_cs_runs, &vx.exact_cs, &vx.pool);
  freeze_exact(exact_ci_runs, &vx.exact_ci, &vx.pool);

  for (size_t g = 0; g < group_members.size(); ++g) {
    RE2::Options options = group_options[g];
    options.set_log_errors(false);
    options.set_max_mem(std::max(options.max_mem(), kRegexSetMaxMem));
    RegexGroup group;
    group.set = std::make_unique<RE2::Set>(options, RE2::ANCHOR_BOTH);
    for (const auto& [index, re] : group_members[g]) {
      if (group.set->Add(re->pattern(), nullptr) < 0) {
        vx.always.push_back(index);
      } else {
        group.routes.push_back(index);
      }
    }
    if (group.routes.empty()) continue;
    if (!group.set->Compile()) {
      vx.always.insert(vx.always.end(), group.routes.begin(), group.routes.end());
      continue;
    }
    vx.regex_route_count += group.routes.size();
    vx.regex_groups.push_back(std::move(group));
  }
  std::sort(vx.always.begin(), vx.always.end());
  return vx;
}

// ---------------------------------------------------------------------------------------------
// Virtual host selection.

// Wildcard hostnames keyed by their fixed part, grouped by its length, longest first, so the
// longest wildcard wins after one probe per distinct length.
class WildcardIndex {
 public:
  void add(std::string_view fixed, uint32_t host) {
    for (auto& [len, map] : by_len_) {
      if (len == fixed.size()) {
        map.add(fixed, host);
        return;
      }
    }
    by_len_.emplace_back(fixed.size(), HostNameIndex{});
    by_len_.back().second.add(fixed, host);
    std::sort(by_len_.begin(), by_len_.end(),
              [](const auto& a, const auto& b) { return a.first > b.first; });
  }

  // The wildcard must cover at least one character.
  int64_t find(std::string_view subject, bool suffix, size_t* matched_len) const {
    for (const auto& [len, map] : by_len_) {
      if (len >= subject.size()) continue;
      std::string_view key = suffix ? subject.substr(subject.size() - len) : subject.substr(0, len);
      int64_t host = map.find(key);
      if (host >= 0) {
        *matched_len = len;
        return host;
      }
    }
    return -1;
  }

 private:
  std::vector<std::pair<size_t, HostNameIndex>> by_len_;
};

// Looks a wildcard up both in the port-qualified index (full authority) and the plain one
// (authority without port); the longer fixed part wins, the port-qualified one on a tie.
int64_t find_wildcard(const WildcardIndex& with_port, const WildcardIndex& plain,
                      std::string_view authority, const HostPort& hp, bool suffix) {
  size_t port_len = 0;
  size_t plain_len = 0;
  int64_t port_hit = hp.has_port ? with_port.find(authority, suffix, &port_len) : -1;
  int64_t plain_hit = plain.find(hp.host, suffix, &plain_len);
  if (port_hit >= 0 && (plain_hit < 0 || port_len >= plain_len)) return port_hit;
  return plain_hit;
}

class RouteTableImpl final : public RouteTable {
 public:
  explicit RouteTableImpl(std::vector<VirtualHostSpec> hosts) : hosts_(std::move(hosts)) {
    index_.reserve(hosts_.size());
    for (uint32_t i = 0; i < hosts_.size(); ++i) {
      index_.push_back(index_routes(hosts_[i]));
      std::string_view name = hosts_[i].hostname;
      bool has_port = split_port(name).has_port;
      if (name == "*") {
        if (star_ < 0) star_ = i;
      } else if (!name.empty() && name.front() == '*') {
        (has_port ? suffix_port_ : suffix_plain_).add(name.substr(1), i);
      } else if (!name.empty() && name.back() == '*') {
        (has_port ? prefix_port_ : prefix_plain_).add(name.substr(0, name.size() - 1), i);
      } else {
        (has_port ? exact_port_ : exact_plain_).add(name, i);
      }
    }
  }

  Match match(const RequestView& request, uint32_t draw) const override {
    int64_t host = select_host(request.authority);
    if (host < 0) return Match{};
    const VHostIndex& vx = index_[static_cast<size_t>(host)];
    std::string_view path = request.path;
    const uint32_t* pool = vx.pool.data();

    CursorList cursors;
    vx.prefix_cs.walk<false>(path, pool, false, &cursors);
    vx.prefix_ci.walk<true>(path, pool, false, &cursors);
    vx.regex_literal.walk<false>(path, pool, true, &cursors);
    if (vx.may_be_exact(path.size()) && !vx.exact_cs.empty()) {
      auto it = vx.exact_cs.find(path);
      if (it != vx.exact_cs.end()) {
        cursors.push(pool + it->second.begin, pool + it->second.begin + it->second.count, false);
      }
    }
    if (vx.may_be_exact(path.size()) && !vx.exact_ci.empty()) {
      auto it = vx.exact_ci.find(path);
      if (it != vx.exact_ci.end()) {
        cursors.push(pool + it->second.begin, pool + it->second.begin + it->second.count, false);
      }
    }
    if (!vx.regex_groups.empty()) collect_regex(vx, path, &cursors);
    if (!vx.always.empty()) {
      cursors.push(vx.always.data(), vx.always.data() + vx.always.size(), true);
    }

    // Merge the sorted runs, evaluating candidates in route order until one matches.
    Cursor* runs = cursors.data();
    size_t run_count = cursors.size();
    while (true) {
      Cursor* best = nullptr;
      for (size_t i = 0; i < run_count; ++i) {
        Cursor& c = runs[i];
        if (c.next != c.end && (best == nullptr || *c.next < *best->next)) best = &c;
      }
      if (best == nullptr) return Match{};
      uint32_t index = *best->next++;
      const RouteTarget* target = evaluate(vx, index, best->verify_path, request, draw);
      if (target != nullptr) return Match{vx.routes[index], target, &hosts_[host]};
    }
  }

  const std::vector<VirtualHostSpec>& hosts() const override { return hosts_; }

 private:
  int64_t select_host(std::string_view authority) const {
    HostPort hp = split_port(authority);
    int64_t hit = -1;
    if (hp.has_port && !exact_port_.empty()) {
      hit = exact_port_.find(authority);
      if (hit >= 0) return hit;
    }
    if (!exact_plain_.empty()) {
      hit = exact_plain_.find(hp.host);
      if (hit >= 0) return hit;
    }
    hit = find_wildcard(suffix_port_, suffix_plain_, authority, hp, true);
    if (hit >= 0) return hit;
    hit = find_wildcard(prefix_port_, prefix_plain_, authority, hp, false);
    if (hit >= 0) return hit;
    return star_;
  }

  // RE2::Set::Match with an output vector allocates, so first ask whether anything matches at
  // all (an early-exit DFA pass); the index pass runs only for paths that hit a regex route.
  static void collect_regex(const VHostIndex& vx, std::string_view path, CursorList* cursors) {
    thread_local std::vector<uint32_t> hits;
    thread_local std::vector<int> set_hits;
    hits.clear();
    // Reserved up front so the runs pushed below stay valid while later groups append.
    hits.reserve(vx.regex_route_count);
    for (const RegexGroup& group : vx.regex_groups) {
      RE2::Set::ErrorInfo error{RE2::Set::kNoError};
      bool any = group.set->Match(path, nullptr, &error);
      if (any) {
        set_hits.clear();
        error.kind = RE2::Set::kNoError;
        any = group.set->Match(path, &set_hits, &error);
      }
      if (!any) {
        if (error.kind != RE2::Set::kNoError) {
          // The set's DFA gave up (memory budget): check this group's routes one by one.
          cursors->push(group.routes.data(), group.routes.data() + group.routes.size(), true);
        }
        continue;
      }
      size_t start = hits.size();
      for (int i : set_hits) hits.push_back(group.routes[static_cast<size_t>(i)]);
      std::sort(hits.begin() + static_cast<std::ptrdiff_t>(start), hits.end());
      cursors->push(hits.data() + start, hits.data() + hits.size(), false);
    }
  }

  static const RouteTarget* evaluate(const VHostIndex& vx, uint32_t index, bool verify_path,
                                     const RequestView& request, uint32_t draw) {
    const Route& route = *vx.routes[index];
    if (route.targets.empty() || draw >= route.targets.back().cumulative_weight) return nullptr;
    if (verify_path) {
      const RE2* re = vx.path_regex[index];
      if (re == nullptr || !RE2::FullMatch(request.path, *re)) return nullptr;
    }
    for (const HeaderMatcher& hm : route.headers) {
      if (!header_matches(hm, request)) return nullptr;
    }
    for (const QueryMatcher& qm : route.query) {
      if (!query_matches(qm, request.query)) return nullptr;
    }
    for (const RouteTarget& target : route.targets) {
      if (draw < target.cumulative_weight) return &target;
    }
    return nullptr;
  }

  std::vector<VirtualHostSpec> hosts_;
  std::vector<VHostIndex> index_;
  HostNameIndex exact_port_;
  HostNameIndex exact_plain_;
  WildcardIndex suffix_port_;
  WildcardIndex suffix_plain_;
  WildcardIndex prefix_port_;
  WildcardIndex prefix_plain_;
  int64_t star_ = -1;
};

// `wild` starts with '*'; `other` does not end with '*' and may start with one.
bool leading_glob_compatible(std::string_view wild, std::string_view other, bool other_wild) {
  std::string_view a = wild.substr(1);
  std::string_view b = other_wild ? other.substr(1) : other;
  if (wild.size() > b.size()) {
    if (!other_wild) return false;  // the '*' would have to match nothing
    std::swap(a, b);
  }
  return ends_with(b, a, true);
}

// `wild` ends with '*'; `other` does not start with '*' and may end with one.
bool trailing_glob_compatible(std::string_view wild, std::string_view other, bool other_wild) {
  std::string_view a = wild.substr(0, wild.size() - 1);
  std::string_view b = other_wild ? other.substr(0, other.size() - 1) : other;
  if (wild.size() > b.size()) {
    if (!other_wild) return false;
    std::swap(a, b);
  }
  return starts_with(b, a, true);
}

}  // namespace

std::shared_ptr<const RouteTable> RouteTable::build(std::vector<VirtualHostSpec> hosts) {
  return std::make_shared<const RouteTableImpl>(std::move(hosts));
}

bool glob_matches_host(std::string_view glob, std::string_view hostname) {
  if (iequals(glob, hostname)) return true;
  if (glob == "*" || hostname == "*") return true;
  if (glob.empty() || hostname.empty()) return false;
  if (glob.front() == '.' || hostname.front() == '.') return false;
  bool glob_start = glob.front() == '*';
  bool glob_end = glob.back() == '*';
  bool host_start = hostname.front() == '*';
  bool host_end = hostname.back() == '*';
  // A '*' at both ends is no valid glob (Envoy takes the trailing one literally): equality only.
  if ((glob_start && glob_end) || (host_start && host_end)) return false;
  if (!glob_start && !glob_end && !host_start && !host_end) return false;
  // "*.a" and "b.*" always share some name such as "b.x.a".
  if ((glob_start && host_end) || (host_start && glob_end)) return true;
  if (glob_start) return leading_glob_compatible(glob, hostname, host_start);
  if (host_start) return leading_glob_compatible(hostname, glob, glob_start);
  if (glob_end) return trailing_glob_compatible(glob, hostname, host_end);
  return trailing_glob_compatible(hostname, glob, glob_end);
}

StringMatcher host_glob_matcher(std::string_view glob) {
  StringMatcher m;
  m.ignore_case = true;
  if (glob == "*") {
    m.kind = StringMatchKind::kAny;
    m.value = "*";
  } else if (!glob.empty() && glob.front() == '*') {
    m.kind = StringMatchKind::kSuffix;
    m.value.assign(glob.substr(1));
  } else if (!glob.empty() && glob.back() == '*') {
    m.kind = StringMatchKind::kPrefix;
    m.value.assign(glob.substr(0, glob.size() - 1));
  } else {
    m.kind = StringMatchKind::kExact;
    m.value.assign(glob);
  }
  return m;
}

const char* to_string(PathMatchKind k) {
  switch (k) {
    case PathMatchKind::kPrefix:
      return "prefix";
    case PathMatchKind::kExact:
      return "exact";
    case PathMatchKind::kRegex:
      return "regex";
  }
  return "prefix";
}

const char* to_string(StringMatchKind k) {
  switch (k) {
    case StringMatchKind::kExact:
      return "exact";
    case StringMatchKind::kPresent:
      return "present";
    case StringMatchKind::kRegex:
      return "regex";
    case StringMatchKind::kPrefix:
      return "prefix";
    case StringMatchKind::kSuffix:
      return "suffix";
    case StringMatchKind::kAny:
      return "any";
  }
  return "exact";
}

const char* to_string(InsecureAction a) {
  switch (a) {
    case InsecureAction::kRoute:
      return "Route";
    case InsecureAction::kRedirect:
      return "Redirect";
    case InsecureAction::kReject:
      return "Reject";
  }
  return "Route";
}

}  // namespace proxenos::router
