#include "config/secret.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "config/decode.h"

namespace proxenos::config {

namespace {

int base64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

constexpr std::string_view kBegin = "-----BEGIN ";
constexpr std::string_view kDashes = "-----";

struct PemBlock {
  std::string label;
  bool encrypted = false;  // RFC 1421 "Proc-Type: 4,ENCRYPTED" header
  bool body_ok = false;    // base64 that decodes to a DER SEQUENCE
};

// Splits `pem` into its blocks; false with `error` set for a block without its END line.
bool pem_blocks(std::string_view pem, std::vector<PemBlock>* out, std::string* error) {
  size_t pos = 0;
  while ((pos = pem.find(kBegin, pos)) != std::string_view::npos) {
    size_t label_start = pos + kBegin.size();
    size_t label_end = pem.find(kDashes, label_start);
    size_t line_end = pem.find('\n', label_start);
    if (label_end == std::string_view::npos ||
        (line_end != std::string_view::npos && label_end > line_end)) {
      *error = "has a damaged BEGIN line";
      return false;
    }
    PemBlock block;
    block.label = std::string(pem.substr(label_start, label_end - label_start));
    size_t body_start = label_end + kDashes.size();
    std::string end_marker = "-----END " + block.label + "-----";
    size_t body_end = pem.find(end_marker, body_start);
    if (body_end == std::string_view::npos) {
      *error = "has a " + block.label + " block without its END line (truncated?)";
      return false;
    }
    std::string_view body = pem.substr(body_start, body_end - body_start);
    // Header lines ("Proc-Type: ...", "DEK-Info: ...") come before the base64 of old-style
    // encrypted keys; they contain a colon, which base64 never does.
    std::string base64;
    size_t line = 0;
    while (line < body.size()) {
      size_t nl = body.find('\n', line);
      std::string_view text = body.substr(line, nl == std::string_view::npos ? nl : nl - line);
      if (text.find(':') != std::string_view::npos) {
        if (text.find("ENCRYPTED") != std::string_view::npos) block.encrypted = true;
      } else {
        base64.append(text.data(), text.size());
      }
      if (nl == std::string_view::npos) break;
      line = nl + 1;
    }
    std::string der;
    block.body_ok = base64_decode(base64, &der) && !der.empty() && der[0] == 0x30;
    out->push_back(std::move(block));
    pos = body_end + end_marker.size();
  }
  return true;
}

const char* expected_label(PemKind kind) {
  switch (kind) {
    case PemKind::kCertificate:
      return "CERTIFICATE";
    case PemKind::kPrivateKey:
      return "PRIVATE KEY";
    case PemKind::kCrl:
      return "X509 CRL";
  }
  return "";
}

}  // namespace

bool base64_decode(std::string_view in, std::string* out) {
  out->clear();
  out->reserve(in.size() / 4 * 3 + 3);
  uint32_t acc = 0;
  int bits = 0;
  size_t chars = 0;
  size_t padding = 0;
  for (char ch : in) {
    if (is_space(ch)) continue;
    if (ch == '=') {
      ++padding;
      continue;
    }
    if (padding > 0) return false;  // data after padding
    int v = base64_value(static_cast<unsigned char>(ch));
    if (v < 0) return false;
    ++chars;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (chars % 4 == 1 || padding > 2) return false;
  if (padding > 0 && (chars + padding) % 4 != 0) return false;
  return true;
}

std::string check_pem(std::string_view pem, PemKind kind) {
  std::vector<PemBlock> blocks;
  std::string error;
  if (!pem_blocks(pem, &blocks, &error)) return error;
  const std::string want = expected_label(kind);
  if (blocks.empty()) {
    std::string twice;
    if (base64_decode(pem, &twice) && twice.find(kBegin) != std::string::npos) {
      return "holds base64 of PEM text, not PEM: the value was base64-encoded twice";
    }
    return "holds no PEM data (expected a -----BEGIN " + want + "----- block)";
  }
  size_t matching = 0;
  for (const PemBlock& b : blocks) {
    bool is_key = b.label == "PRIVATE KEY" || b.label == "RSA PRIVATE KEY" ||
                  b.label == "EC PRIVATE KEY" || b.label == "ENCRYPTED PRIVATE KEY";
    bool relevant = kind == PemKind::kPrivateKey ? is_key : b.label == want;
    if (!relevant) continue;
    if (kind == PemKind::kPrivateKey && (b.encrypted || b.label == "ENCRYPTED PRIVATE KEY")) {
      return "holds an encrypted private key; Proxenos needs it unencrypted";
    }
    if (!b.body_ok) return "has a damaged " + b.label + " block (its body is not base64 DER)";
    ++matching;
  }
  if (matching == 0) {
    return "holds no " + want + " block (found " + blocks.front().label + ")";
  }
  if (kind == PemKind::kPrivateKey && matching > 1) {
    return "holds " + std::to_string(matching) + " private keys; it must hold exactly one";
  }
  return "";
}

bool read_pem_file(const std::string& path, const std::string& base_dir, std::string* out,
                   std::string* error) {
  constexpr std::uintmax_t kMaxBytes = 8u << 20;
  std::filesystem::path p(path);
  if (p.is_relative() && !base_dir.empty()) p = std::filesystem::path(base_dir) / p;
  std::error_code ec;
  auto status = std::filesystem::status(p, ec);
  if (ec) {
    *error = "cannot read " + p.string() + ": " + ec.message();
    return false;
  }
  if (!std::filesystem::is_regular_file(status)) {
    *error = "cannot read " + p.string() + ": not a regular file";
    return false;
  }
  std::uintmax_t size = std::filesystem::file_size(p, ec);
  if (ec || size > kMaxBytes) {
    *error = "cannot read " + p.string() + ": " + (ec ? ec.message() : "larger than 8 MiB");
    return false;
  }
  std::ifstream in(p, std::ios::binary);
  if (!in) {
    *error = "cannot read " + p.string() + ": " + std::strerror(errno);
    return false;
  }
  out->assign(static_cast<size_t>(size), '\0');
  in.read(out->data(), static_cast<std::streamsize>(size));
  out->resize(static_cast<size_t>(in.gcount()));
  return true;
}

// ---------------------------------------------------------------------------------------------

void SecretIndex::add(const Resource* secret) {
  entries_[secret->namespace_ + "/" + secret->name].resource = secret;
}

bool SecretIndex::exists(const std::string& namespace_, const std::string& name) const {
  return entries_.count(namespace_ + "/" + name) != 0;
}

std::vector<std::string> SecretIndex::namespaces_with(const std::string& name) const {
  std::vector<std::string> out;
  for (const auto& [key, entry] : entries_) {
    if (entry.resource->name == name) out.push_back(entry.resource->namespace_);
  }
  return out;
}

const SecretData* SecretIndex::get(const std::string& namespace_, const std::string& name,
                                   bool* invalid) {
  *invalid = false;
  auto it = entries_.find(namespace_ + "/" + name);
  if (it == entries_.end()) return nullptr;
  Entry& e = it->second;
  if (e.decoded) {
    *invalid = e.data == nullptr;
    return e.data.get();
  }
  e.decoded = true;
  try {
    e.data = decode(*e.resource);
  } catch (const YAML::Exception& ex) {
    Reporter r(*e.resource, out_);
    r.error(e.resource->object, "", std::string("cannot read the Secret: ") + ex.what());
    e.data.reset();
  }
  *invalid = e.data == nullptr;
  return e.data.get();
}

std::unique_ptr<SecretData> SecretIndex::decode(const Resource& res) {
  Reporter r(res, out_);
  auto data = std::make_unique<SecretData>();
  data->source = res.key();
  data->name = res.name;
  data->namespace_ = res.namespace_;
  data->origin = res.origin;

  const YAML::Node type = child(res.object, "type");
  if (type.IsDefined() && !type.IsNull()) {
    if (auto t = read_string(r, type, type, "type")) data->type = *t;
  }
  // `data` is base64 as the API stores it. A value that already is PEM text is taken as it is,
  // as Emissary does: hand-written Secrets in a config folder often skip the encoding.
  const YAML::Node raw = child(res.object, "data");
  MapReader data_map(r, raw, "data", res.object);
  if (data_map.is_map()) {
    for (const auto& kv : raw) {
      if (!kv.first.IsScalar()) continue;  // reported by MapReader
      const std::string key = kv.first.Scalar();
      const std::string path = "data." + key;
      std::optional<std::string> value = read_string(r, kv.second, kv.first, path);
      if (!value) continue;
      if (value->starts_with(kBegin)) {
        data->values[key] = std::move(*value);
        continue;
      }
      std::string decoded;
      if (!base64_decode(*value, &decoded)) {
        r.error(kv.first, path, "is not valid base64");
        continue;
      }
      data->values[key] = std::move(decoded);
    }
  }
  const YAML::Node plain = child(res.object, "stringData");
  MapReader plain_map(r, plain, "stringData", res.object);
  if (plain_map.is_map()) {
    for (const auto& kv : plain) {
      if (!kv.first.IsScalar()) continue;
      const std::string key = kv.first.Scalar();
      if (auto value = read_string(r, kv.second, kv.first, "stringData." + key)) {
        data->values[key] = std::move(*value);
      }
    }
  }

  auto where = [&](const std::string& key) {
    YAML::Node at =
        data_map.is_map() && data_map.has(key) ? data_map.where(key) : plain_map.where(key);
    return at.IsDefined() ? at : res.object;
  };
  if (data->type == "kubernetes.io/tls") {
    for (const char* key : {"tls.crt", "tls.key"}) {
      if (data->get(key) == nullptr && !r.has_error_at(std::string("data.") + key)) {
        r.error(res.object, std::string("data.") + key,
                "is required in a Secret of type kubernetes.io/tls");
      }
    }
  }
  // The well-known keys are checked whenever the Secret is used at all, so a broken rotation
  // shows on the Secret itself (and its last good version keeps serving).
  const std::pair<const char*, PemKind> known[] = {{"tls.crt", PemKind::kCertificate},
                                                   {"tls.key", PemKind::kPrivateKey},
                                                   {"ca.crt", PemKind::kCertificate},
                                                   {"crl.pem", PemKind::kCrl}};
  if (data->tls_capable()) {
    for (const auto& [key, kind] : known) {
      const std::string* v = data->get(key);
      if (v == nullptr) continue;
      std::string problem = check_pem(*v, kind);
      if (!problem.empty()) r.error(where(key), std::string("data.") + key, problem);
    }
  }
  if (r.errors() > 0) return nullptr;
  return data;
}

}  // namespace proxenos::config
