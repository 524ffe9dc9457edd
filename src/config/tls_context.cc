#include "config/tls_context.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

namespace proxenos::config {

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(std::string_view s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

std::optional<net::TlsVersion> parse_version(const std::string& v) {
  if (v == "v1.0") return net::TlsVersion::k1_0;
  if (v == "v1.1") return net::TlsVersion::k1_1;
  if (v == "v1.2") return net::TlsVersion::k1_2;
  if (v == "v1.3") return net::TlsVersion::k1_3;
  return std::nullopt;
}

// The key to read: Emissary's camelCase spelling when only that is present in a Host's spec.tls.
std::string_view key_for(const MapReader& m, bool host_inline, std::string_view snake,
                         std::string_view camel) {
  if (host_inline && !camel.empty() && !m.has(snake) && m.has(camel)) return camel;
  return snake;
}

// A string naming a Secret. Empty is the same as absent (Go's omitempty writes nothing).
std::optional<SecretRef> read_secret_ref(MapReader& m, std::string_view key) {
  Reporter& r = m.reporter();
  YAML::Node at = m.where(key);
  std::optional<std::string> v = m.string(key);
  if (!v) return std::nullopt;
  std::string name = trim(*v);
  if (name.empty()) return std::nullopt;
  if (name.find_first_of("/ \t") != std::string::npos) {
    r.error(at, m.path(key), "\"" + name + "\" must be a Secret name, or name.namespace");
    return std::nullopt;
  }
  SecretRef ref;
  ref.name = std::move(name);
  ref.field = m.path(key);
  ref.at = r.origin_at(at);
  return ref;
}

std::optional<FileRef> read_file_ref(MapReader& m, std::string_view key) {
  Reporter& r = m.reporter();
  YAML::Node at = m.where(key);
  std::optional<std::string> v = m.string(key);
  if (!v) return std::nullopt;
  std::string path = trim(*v);
  if (path.empty()) return std::nullopt;
  FileRef ref;
  ref.path = std::move(path);
  ref.field = m.path(key);
  ref.at = r.origin_at(at);
  return ref;
}

// cipher_suites / ecdh_curves: names are left to net/tls; an empty one is plainly a mistake.
std::vector<std::string> read_names(MapReader& m, std::string_view key) {
  Reporter& r = m.reporter();
  YAML::Node at = m.where(key);
  std::vector<std::string> out;
  std::optional<std::vector<std::string>> v = m.string_list(key);
  if (!v) return out;
  for (size_t i = 0; i < v->size(); ++i) {
    std::string name = trim((*v)[i]);
    if (name.empty()) {
      r.error(at, m.path(key) + "[" + std::to_string(i) + "]", "must not be empty");
      continue;
    }
    out.push_back(std::move(name));
  }
  return out;
}

// alpn_protocols: Emissary's comma-separated string (a list is accepted too), trimmed.
std::optional<std::vector<std::string>> read_alpn(MapReader& m, std::string_view key) {
  Reporter& r = m.reporter();
  YAML::Node at = m.where(key);
  YAML::Node v = m.take(key);
  if (!v.IsDefined()) return std::nullopt;
  std::vector<std::string> raw;
  if (v.IsSequence()) {
    for (size_t i = 0; i < v.size(); ++i) {
      auto s = read_string(r, v[i], at, m.path(key) + "[" + std::to_string(i) + "]");
      if (!s) return std::nullopt;
      raw.push_back(*s);
    }
  } else {
    auto s = read_string(r, v, at, m.path(key));
    if (!s) return std::nullopt;
    size_t start = 0;
    while (start <= s->size()) {
      size_t comma = s->find(',', start);
      if (comma == std::string::npos) comma = s->size();
      raw.push_back(s->substr(start, comma - start));
      start = comma + 1;
    }
  }
  std::vector<std::string> out;
  for (const std::string& p : raw) {
    std::string name = trim(p);
    if (name.empty()) continue;
    if (name.size() > 255) {
      r.error(at, m.path(key), "an ALPN protocol name is at most 255 bytes");
      return std::nullopt;
    }
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(std::move(name));
  }
  if (out.empty()) return std::nullopt;  // "" = the default
  return out;
}

std::optional<net::TlsVersion> read_version(MapReader& m, std::string_view key) {
  auto v = m.one_of(key, {"v1.0", "v1.1", "v1.2", "v1.3"});
  if (!v) return std::nullopt;
  return parse_version(*v);
}

// The fields TLSContext and a Host's spec.tls share.
void decode_tls_fields(MapReader& m, bool host_inline, TlsContextSpec* c) {
  Reporter& r = m.reporter();
  auto key = [&](std::string_view snake, std::string_view camel) {
    return key_for(m, host_inline, snake, camel);
  };
  if (!host_inline) c->secret = read_secret_ref(m, "secret");
  c->cert_chain_file = read_file_ref(m, key("cert_chain_file", "certChainFile"));
  c->private_key_file = read_file_ref(m, key("private_key_file", "privateKeyFile"));
  c->ca_secret = read_secret_ref(m, key("ca_secret", "caSecret"));
  c->cacert_chain_file = read_file_ref(m, key("cacert_chain_file", "cacertChainFile"));
  c->crl_secret = read_secret_ref(m, key("crl_secret", "crlSecret"));
  c->alpn = read_alpn(m, key("alpn_protocols", "alpnProtocols"));
  c->cert_required = m.boolean(key("cert_required", "certRequired"));
  c->min_version = read_version(m, key("min_tls_version", "minTlsVersion"));
  YAML::Node max_at = m.where(key("max_tls_version", "maxTlsVersion"));
  std::string max_field = m.path(key("max_tls_version", "maxTlsVersion"));
  c->max_version = read_version(m, key("max_tls_version", "maxTlsVersion"));
  c->cipher_suites = read_names(m, key("cipher_suites", "cipherSuites"));
  c->ecdh_curves = read_names(m, key("ecdh_curves", "ecdhCurves"));
  {
    auto k = key("redirect_cleartext_from", "redirectCleartextFrom");
    YAML::Node at = m.where(k);
    std::string field = m.path(k);
    if (m.integer(k, 1, 65535)) {
      r.warning(at, field,
                "is not supported (an Emissary 1.x setting): open the port with a Listener and "
                "redirect with the Host's requestPolicy.insecure.action: Redirect");
    }
  }
  if (auto sni = m.string("sni")) {
    std::string s = trim(*sni);
    if (!s.empty()) c->sni = s;
  }
  if (!host_inline) {
    if (auto ns = m.boolean("secret_namespacing")) c->secret_namespacing = *ns;
    m.not_yet_effective("signature_algorithms");
  }

  // Consistency (irtlscontext.py setup/resolve, with Proxenos's wording).
  if (c->secret && c->cert_chain_file) {
    r.error(m.where("cert_chain_file"), m.path("cert_chain_file"),
            "must not be set together with secret: name one certificate");
  }
  if (c->cert_chain_file && !c->private_key_file) {
    r.error(m.where(key("cert_chain_file", "certChainFile")), c->cert_chain_file->field,
            "needs private_key_file as well");
  }
  if (c->private_key_file && !c->cert_chain_file) {
    r.error(m.where(key("private_key_file", "privateKeyFile")), c->private_key_file->field,
            "needs cert_chain_file as well");
  }
  if (c->min_version && c->max_version && *c->min_version > *c->max_version) {
    r.error(max_at, max_field, "is below min_tls_version");
  }
  bool has_ca = c->ca_secret || c->cacert_chain_file;
  if (c->ca_secret && c->cacert_chain_file) {
    r.warning(m.where(key("cacert_chain_file", "cacertChainFile")), c->cacert_chain_file->field,
              "is ignored: ca_secret names the CA");
    c->cacert_chain_file.reset();
  }
  if (c->cert_required.value_or(false) && !has_ca) {
    r.error(m.where(key("cert_required", "certRequired")),
            m.path(key("cert_required", "certRequired")),
            "needs ca_secret or cacert_chain_file to verify client certificates with");
  }
  if (c->crl_secret && !has_ca) {
    r.warning(m.where(key("crl_secret", "crlSecret")), c->crl_secret->field,
              "has no effect without ca_secret or cacert_chain_file");
  }
  if (!c->secret_namespacing) {
    for (auto* ref : {&c->secret, &c->ca_secret, &c->crl_secret}) {
      if (*ref) (*ref)->naming = SecretNaming::kLiteralOnly;
    }
  }
}

std::string base_dir_of(const Origin& origin) {
  if (origin.file.empty()) return "";
  return std::filesystem::path(origin.file).parent_path().string();
}

}  // namespace

std::optional<TlsContextSpec> decode_tls_context(const Resource& resource,
                                                 Diagnostics* diagnostics) {
  Reporter r(resource, diagnostics);
  TlsContextSpec c;
  c.name = resource.name;
  c.namespace_ = resource.namespace_;
  c.source = resource.key();
  c.origin = resource.origin;
  c.base_dir = base_dir_of(resource.origin);

  MapReader spec(r, resource.spec, "spec", resource.object);
  if (spec.present() && !spec.is_map()) return std::nullopt;
  spec.ignore("ambassador_id");
  YAML::Node hosts_at = spec.where("hosts");
  if (auto hosts = spec.string_list("hosts")) {
    for (size_t i = 0; i < hosts->size(); ++i) {
      std::string h = trim((*hosts)[i]);
      if (h.empty()) {
        r.error(hosts_at, "spec.hosts[" + std::to_string(i) + "]", "must not be empty");
        continue;
      }
      c.hosts.push_back(std::move(h));
    }
  }
  decode_tls_fields(spec, false, &c);
  spec.finish();
  if (r.errors() > 0) return std::nullopt;
  return c;
}

TlsContextSpec decode_host_inline_tls(MapReader& tls, const Resource& host) {
  TlsContextSpec c;
  c.name = host.name;
  c.namespace_ = host.namespace_;
  c.source = host.key();
  c.origin = host.origin;
  c.base_dir = base_dir_of(host.origin);
  c.host_inline = true;
  decode_tls_fields(tls, true, &c);
  tls.finish();
  return c;
}

// ---------------------------------------------------------------------------------------------

void TlsResolver::add_context(const TlsContextSpec* context) {
  contexts_.emplace(context->name, context);
  ordered_.push_back(context);
}

void TlsResolver::report(Severity severity, const std::string& resource, const Origin& at,
                         const std::string& field, std::string message) {
  if (out_ == nullptr) return;
  Diagnostic d;
  d.severity = severity;
  d.origin = at;
  d.resource = resource;
  d.field = field;
  d.message = std::move(message);
  out_->push_back(std::move(d));
}

const TlsContextSpec* TlsResolver::find_context(const std::string& name,
                                                const std::string& namespace_,
                                                std::string* error) const {
  auto [begin, end] = contexts_.equal_range(name);
  std::vector<const TlsContextSpec*> elsewhere;
  for (auto it = begin; it != end; ++it) {
    if (it->second->namespace_ == namespace_) return it->second;
    elsewhere.push_back(it->second);
  }
  if (elsewhere.size() == 1) return elsewhere.front();
  if (elsewhere.empty()) {
    *error = "TLSContext " + name + " does not exist";
  } else {
    std::vector<std::string> namespaces;
    for (const TlsContextSpec* c : elsewhere) namespaces.push_back(c->namespace_);
    *error = "TLSContext " + name + " is ambiguous: it exists in namespaces " + join(namespaces) +
             " but not in " + namespace_;
  }
  return nullptr;
}

std::vector<const TlsContextSpec*> TlsResolver::contexts_for_host(
    const std::string& hostname) const {
  std::vector<const TlsContextSpec*> out;
  const std::string want = lower(hostname);
  for (const TlsContextSpec* c : ordered_) {
    for (const std::string& h : c->hosts) {
      if (lower(h) == want) {
        out.push_back(c);
        break;
      }
    }
  }
  return out;
}

const SecretData* TlsResolver::secret(const SecretRef& ref, const std::string& default_namespace,
                                      const std::string& resource) {
  using Candidate = std::pair<std::string, std::string>;  // namespace, name
  std::vector<Candidate> candidates;
  std::optional<Candidate> split;
  size_t dot = ref.name.rfind('.');
  if (dot != std::string::npos && dot > 0 && dot + 1 < ref.name.size()) {
    split = Candidate{ref.name.substr(dot + 1), ref.name.substr(0, dot)};
  }
  Candidate literal{ref.namespace_.empty() ? default_namespace : ref.namespace_, ref.name};
  if (!ref.namespace_.empty()) {
    candidates.push_back(literal);
  } else if (ref.naming == SecretNaming::kSplitFirst) {
    if (split) candidates.push_back(*split);
    candidates.push_back(literal);
  } else if (ref.naming == SecretNaming::kLiteralFirst) {
    candidates.push_back(literal);
    if (split) candidates.push_back(*split);
  } else {
    candidates.push_back(literal);
  }
  const Candidate* found = nullptr;
  for (const Candidate& c : candidates) {
    if (secrets_.exists(c.first, c.second)) {
      found = &c;
      break;
    }
  }
  if (found == nullptr) {
    const Candidate& first = candidates.front();
    std::string message = "Secret " + first.second + " not found in namespace " + first.first;
    if (split && ref.naming == SecretNaming::kSplitFirst && ref.namespace_.empty()) {
      message = "Secret \"" + ref.name + "\" not found (read as Secret " + split->second +
                " in namespace " + split->first + ", or " + ref.name + " in namespace " +
                literal.first + ")";
    }
    std::vector<std::string> others;
    for (const std::string& ns : secrets_.namespaces_with(first.second)) {
      if (ns != first.first) others.push_back(ns);
    }
    if (!others.empty()) {
      message += "; a Secret of that name exists in namespace " + join(others) + " (write " +
                 first.second + "." + others.front() + ")";
    }
    report(Severity::kError, resource, ref.at, ref.field, std::move(message));
    return nullptr;
  }
  bool invalid = false;
  const SecretData* data = secrets_.get(found->first, found->second, &invalid);
  if (data == nullptr) {
    report(Severity::kError, resource, ref.at, ref.field,
           "Secret " + found->first + "/" + found->second +
               " cannot be used: see the errors reported on it");
    return nullptr;
  }
  if (!data->tls_capable()) {
    report(Severity::kError, resource, ref.at, ref.field,
           "Secret " + found->first + "/" + found->second + " has type " + data->type +
               ", which holds no TLS material (use kubernetes.io/tls or Opaque)");
    return nullptr;
  }
  return data;
}

bool TlsResolver::certificate_from_secret(const SecretRef& ref,
                                          const std::string& default_namespace,
                                          const std::string& resource, TlsMaterial* out) {
  const SecretData* s = secret(ref, default_namespace, resource);
  if (s == nullptr) return false;
  const std::string* crt = s->get("tls.crt");
  const std::string* key = s->get("tls.key");
  std::string name = s->namespace_ + "/" + s->name;
  if (crt == nullptr) {
    report(Severity::kError, resource, ref.at, ref.field,
           "Secret " + name + " has no tls.crt (the certificate)");
    return false;
  }
  if (key == nullptr) {
    report(Severity::kError, resource, ref.at, ref.field,
           "Secret " + name + " has no tls.key (the private key of its certificate)");
    return false;
  }
  out->cert_pem = *crt;
  out->key_pem = *key;
  out->cert_from = "Secret " + name;
  return true;
}

bool TlsResolver::read_file(const FileRef& ref, const std::string& base_dir, PemKind kind,
                            const std::string& resource, std::string* out) {
  std::string error;
  if (!read_pem_file(ref.path, base_dir, out, &error)) {
    report(Severity::kError, resource, ref.at, ref.field, error);
    return false;
  }
  std::string problem = check_pem(*out, kind);
  if (!problem.empty()) {
    report(Severity::kError, resource, ref.at, ref.field, ref.path + " " + problem);
    out->clear();
    return false;
  }
  return true;
}

std::optional<TlsMaterial> TlsResolver::read_material(const TlsContextSpec& c) {
  TlsMaterial m;
  bool ok = true;
  if (c.secret) {
    ok = certificate_from_secret(*c.secret, c.namespace_, c.source, &m) && ok;
  } else if (c.cert_chain_file && c.private_key_file) {
    ok = read_file(*c.cert_chain_file, c.base_dir, PemKind::kCertificate, c.source, &m.cert_pem) &&
         ok;
    ok = read_file(*c.private_key_file, c.base_dir, PemKind::kPrivateKey, c.source, &m.key_pem) &&
         ok;
    m.cert_from = "file " + c.cert_chain_file->path;
  }
  if (c.ca_secret) {
    if (const SecretData* s = secret(*c.ca_secret, c.namespace_, c.source)) {
      // A Secret's ca.crt is its CA bundle by convention (cert-manager, service accounts); a
      // CA's own Secret has only tls.crt.
      const std::string* ca = s->get("ca.crt");
      if (ca == nullptr) ca = s->get("tls.crt");
      if (ca == nullptr) {
        report(Severity::kError, c.source, c.ca_secret->at, c.ca_secret->field,
               "Secret " + s->namespace_ + "/" + s->name + " has neither ca.crt nor tls.crt");
        ok = false;
      } else {
        std::string problem = check_pem(*ca, PemKind::kCertificate);
        if (!problem.empty()) {
          report(Severity::kError, c.source, c.ca_secret->at, c.ca_secret->field,
                 "Secret " + s->namespace_ + "/" + s->name + ": the CA " + problem);
          ok = false;
        }
        m.ca_pem = *ca;
      }
      // Emissary reads a `cert_required` key from the CA Secret.
      if (const std::string* required = s->get("cert_required")) {
        m.cert_required = lower(trim(*required)) == "true";
      }
    } else {
      ok = false;
    }
  } else if (c.cacert_chain_file) {
    ok = read_file(*c.cacert_chain_file, c.base_dir, PemKind::kCertificate, c.source, &m.ca_pem) &&
         ok;
  }
  if (c.crl_secret) {
    if (const SecretData* s = secret(*c.crl_secret, c.namespace_, c.source)) {
      const std::string* crl = s->get("crl.pem");
      if (crl == nullptr) {
        report(Severity::kError, c.source, c.crl_secret->at, c.crl_secret->field,
               "Secret " + s->namespace_ + "/" + s->name + " has no crl.pem");
        ok = false;
      } else {
        m.crl_pem = *crl;
      }
    } else {
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return m;
}

const TlsMaterial* TlsResolver::material(const TlsContextSpec& context) {
  auto it = materials_.find(&context);
  if (it == materials_.end()) it = materials_.emplace(&context, read_material(context)).first;
  return it->second ? &*it->second : nullptr;
}

void TlsResolver::apply_policy(const TlsContextSpec* c, const TlsMaterial* m,
                               net::TlsServerSettings* s, bool* alpn_explicit) {
  *alpn_explicit = false;
  if (c == nullptr) return;
  if (m != nullptr) {
    s->ca_pem = m->ca_pem;
    s->crl_pem = m->crl_pem;
    s->cert_required = c->cert_required.value_or(m->cert_required.value_or(false));
  }
  if (c->alpn) {
    s->alpn = *c->alpn;
    *alpn_explicit = true;
  }
  if (c->max_version) s->max_version = *c->max_version;
  if (c->min_version) {
    s->min_version = *c->min_version;
  } else if (c->max_version && *c->max_version < net::TlsVersion::k1_2) {
    // Asking for an old maximum asks for old versions: Emissary's minimum (v1.0) applies.
    s->min_version = net::TlsVersion::k1_0;
  }
  s->cipher_suites = c->cipher_suites;
  s->ecdh_curves = c->ecdh_curves;
}

std::optional<ServerTls> TlsResolver::host_tls(const std::string& host_source,
                                               const std::string& host_name,
                                               const std::string& host_namespace,
                                               const std::string& hostname,
                                               const Origin& host_origin, const HostTlsSpec& spec) {
  const TlsContextSpec* ctx = nullptr;
  std::string ctx_field = "spec";
  Origin ctx_at = host_origin;
  if (spec.context) {
    std::string error;
    ctx = find_context(*spec.context, host_namespace, &error);
    ctx_field = "spec.tlsContext.name";
    ctx_at = spec.context_at;
    if (ctx == nullptr) {
      report(Severity::kError, host_source, ctx_at, ctx_field, error);
      return std::nullopt;
    }
  } else if (spec.inline_tls) {
    ctx = &*spec.inline_tls;
  } else if (spec.tls_secret) {
    // Emissary's implicit link: a TLSContext named `<Host name>-context` adds its settings.
    std::string ignored;
    ctx = find_context(host_name + "-context", host_namespace, &ignored);
  }
  const TlsMaterial* mat = nullptr;
  std::optional<TlsMaterial> inline_material;  // not cached: the Host's spec moves afterwards
  if (ctx != nullptr) {
    if (ctx->host_inline) {
      inline_material = read_material(*ctx);
      mat = inline_material ? &*inline_material : nullptr;
    } else {
      mark_used(*ctx);
      mat = material(*ctx);
    }
    if (mat == nullptr) {
      if (!ctx->host_inline) {
        report(Severity::kError, host_source, ctx_at, ctx_field,
               "TLSContext " + ctx->namespace_ + "/" + ctx->name +
                   " cannot be used: see the errors reported on it");
      }
      return std::nullopt;
    }
  }

  TlsMaterial cert;
  if (spec.tls_secret) {
    if (!certificate_from_secret(*spec.tls_secret, host_namespace, host_source, &cert)) {
      return std::nullopt;
    }
    if (ctx != nullptr && ctx->secret &&
        (mat->cert_pem != cert.cert_pem || mat->key_pem != cert.key_pem)) {
      report(Severity::kError, host_source, spec.tls_secret->at, spec.tls_secret->field,
             "the certificate (" + cert.cert_from + ") differs from the one of TLSContext " +
                 ctx->namespace_ + "/" + ctx->name + " (" + mat->cert_from +
                 "); name the same Secret in both, or drop one");
      return std::nullopt;
    }
    if (ctx != nullptr && ctx->cert_chain_file) {
      report(Severity::kWarning, host_source, ctx->host_inline ? ctx->cert_chain_file->at : ctx_at,
             ctx->host_inline ? ctx->cert_chain_file->field : ctx_field,
             "the certificate files of " +
                 (ctx->host_inline ? std::string("spec.tls") : ctx->source) +
                 " are not used: spec.tlsSecret provides the certificate");
    }
  } else if (ctx != nullptr && ctx->has_certificate()) {
    cert.cert_pem = mat->cert_pem;
    cert.key_pem = mat->key_pem;
    cert.cert_from = mat->cert_from;
  } else {
    std::string message = "has no certificate to terminate TLS with: set spec.tlsSecret";
    if (ctx != nullptr && !ctx->host_inline) {
      message += " (TLSContext " + ctx->namespace_ + "/" + ctx->name +
                 " names neither a secret nor cert_chain_file)";
    } else if (ctx != nullptr) {
      message += ", or spec.tls.cert_chain_file and spec.tls.private_key_file";
    }
    report(Severity::kError, host_source, ctx_at, ctx_field, std::move(message));
    return std::nullopt;
  }

  if (ctx != nullptr && !ctx->host_inline && !ctx->hosts.empty()) {
    std::string bare = hostname.substr(
        0, hostname.rfind(':') == std::string::npos ? hostname.size() : hostname.rfind(':'));
    bool listed = std::any_of(ctx->hosts.begin(), ctx->hosts.end(), [&](const std::string& h) {
      return lower(h) == lower(hostname) || lower(h) == lower(bare) || h == host_name;
    });
    if (!listed) {
      report(Severity::kWarning, host_source, ctx_at, ctx_field,
             "TLSContext " + ctx->namespace_ + "/" + ctx->name + " lists hosts " +
                 join(ctx->hosts) + ", which do not include this Host's hostname " + hostname);
    }
  }

  ServerTls out;
  out.settings.name = host_source;
  out.settings.cert_chain_pem = std::move(cert.cert_pem);
  out.settings.private_key_pem = std::move(cert.key_pem);
  apply_policy(ctx, mat, &out.settings, &out.alpn_explicit);
  return out;
}

std::optional<ServerTls> TlsResolver::context_server_tls(const TlsContextSpec& context) {
  if (!context.has_certificate()) return std::nullopt;
  const TlsMaterial* mat = material(context);
  if (mat == nullptr) return std::nullopt;
  ServerTls out;
  out.settings.name = context.source;
  out.settings.cert_chain_pem = mat->cert_pem;
  out.settings.private_key_pem = mat->key_pem;
  apply_policy(&context, mat, &out.settings, &out.alpn_explicit);
  return out;
}

net::TlsClientSettings TlsResolver::client_tls(const TlsContextSpec* context,
                                               const std::string& service_host, TlsPurpose purpose,
                                               bool http2, const std::string& referrer,
                                               const Origin& at) {
  net::TlsClientSettings c;
  // RFC 6066 §3: SNI carries host names only, never address literals.
  if (!is_ip_literal(service_host)) c.sni = service_host;
  const std::string protocol = http2 ? "h2" : "http/1.1";
  if (purpose == TlsPurpose::kHttp) {
    c.alpn = {protocol};
  } else if (context != nullptr && context->alpn) {
    c.alpn = *context->alpn;
  } else {
    c.alpn.clear();
  }
  if (context == nullptr) return c;
  const TlsMaterial* mat = material(*context);
  c.name = context->source;
  if (context->sni) c.sni = *context->sni;
  if (mat != nullptr) {
    if (context->has_certificate()) {
      c.cert_chain_pem = mat->cert_pem;
      c.private_key_pem = mat->key_pem;
    }
    c.ca_pem = mat->ca_pem;
  }
  if (purpose == TlsPurpose::kHttp && context->alpn &&
      std::find(context->alpn->begin(), context->alpn->end(), protocol) == context->alpn->end()) {
    report(Severity::kWarning, referrer, at, "spec.tls",
           "TLSContext " + context->namespace_ + "/" + context->name + " lists ALPN " +
               join(*context->alpn, ",") + "; the upstream is spoken to in " + protocol +
               ", so that is what is offered");
  }
  if (context->max_version) c.max_version = *context->max_version;
  if (context->min_version) {
    c.min_version = *context->min_version;
  } else if (context->max_version && *context->max_version < net::TlsVersion::k1_2) {
    c.min_version = net::TlsVersion::k1_0;
  }
  c.cipher_suites = context->cipher_suites;
  c.ecdh_curves = context->ecdh_curves;
  return c;
}

}  // namespace proxenos::config
