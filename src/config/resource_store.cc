#include "config/resource_store.h"

#include <set>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace proxenos::config {

namespace {

constexpr uint64_t kFnvOffset = 1469598103934665603ull;
constexpr uint64_t kFnvPrime = 1099511628211ull;

void mix(uint64_t& h, std::string_view bytes) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= kFnvPrime;
  }
  // Terminate each piece so "ab"+"c" and "a"+"bc" differ.
  h ^= 0xff;
  h *= kFnvPrime;
}

void hash_node(uint64_t& h, const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      mix(h, "s");
      mix(h, node.Scalar());
      break;
    case YAML::NodeType::Sequence:
      mix(h, "[");
      for (const YAML::Node& item : node) hash_node(h, item);
      mix(h, "]");
      break;
    case YAML::NodeType::Map:
      mix(h, "{");
      for (const auto& kv : node) {
        hash_node(h, kv.first);
        hash_node(h, kv.second);
      }
      mix(h, "}");
      break;
    case YAML::NodeType::Null:
      mix(h, "~");
      break;
    case YAML::NodeType::Undefined:
      mix(h, "?");
      break;
  }
}

// Whether `file` lies at or under the path a file-level error names (a folder that cannot be
// listed covers everything below it).
bool covered_by(const std::string& file, const std::string& path) {
  if (path.empty()) return false;
  if (file == path) return true;
  return file.size() > path.size() && file.compare(0, path.size(), path) == 0 &&
         (path.back() == '/' || file[path.size()] == '/');
}

bool is_error_about(const Diagnostic& d, const std::unordered_set<std::string>& keys) {
  return !d.resource.empty() && keys.count(d.resource) != 0;
}

}  // namespace

uint64_t fingerprint(const YAML::Node& node) {
  uint64_t h = kFnvOffset;
  hash_node(h, node);
  return h;
}

std::vector<Resource> ResourceStore::recover(const std::vector<std::string>& keys) const {
  std::vector<Resource> out;
  // Parse each remembered text once, however many keys it holds.
  std::map<const std::string*, std::pair<std::string, std::unordered_set<std::string>>> by_text;
  for (const std::string& key : keys) {
    const Version& v = good_.at(key);
    if (v.resource) {
      out.push_back(*v.resource);
      continue;
    }
    auto& entry = by_text[v.text.get()];
    entry.first = v.file;
    entry.second.insert(key);
  }
  for (auto& [text, entry] : by_text) {
    LoadResult parsed;
    parse_documents(*text, entry.first, parsed);
    for (Resource& r : parsed.resources) {
      if (entry.second.erase(r.key()) != 0) out.push_back(std::move(r));
    }
  }
  return out;
}

StoreResult ResourceStore::compile(LoadResult loaded, const CompileOptions& options) {
  StoreResult result;

  // Fingerprints: a resource read from a file whose text did not change keeps the fingerprint
  // it had, which spares hashing every tree of a large, mostly unchanged configuration.
  std::unordered_set<std::string> unchanged_files;
  for (auto& [file, text] : loaded.file_texts) {
    auto it = texts_.find(file);
    if (it != texts_.end() && *it->second == *text) {
      text = it->second;  // one copy of the text, shared with the versions kept from it
      unchanged_files.insert(file);
    }
  }
  std::vector<uint64_t> prints(loaded.resources.size());
  std::unordered_map<std::string, size_t> index;  // key -> first resource with that key
  index.reserve(loaded.resources.size());
  for (size_t i = 0; i < loaded.resources.size(); ++i) {
    const Resource& r = loaded.resources[i];
    std::string key = r.key();
    auto applied = applied_.find(key);
    if (applied != applied_.end() && applied->second.file == r.origin.file &&
        unchanged_files.count(r.origin.file) != 0) {
      prints[i] = applied->second.loaded;
    } else {
      prints[i] = fingerprint(r.object);
    }
    index.emplace(std::move(key), i);
  }

  CompileResult first = config::compile(loaded.resources, options);

  // Which resources lost their good version: an error on the new one, or it vanished because
  // its file (or folder) could not be read or parsed.
  std::vector<std::string> swap;
  std::unordered_set<std::string> swapped;
  auto consider = [&](const std::string& key) {
    if (swapped.count(key) != 0) return;
    auto good = good_.find(key);
    if (good == good_.end()) return;
    auto now = index.find(key);
    // Reverting to the same content would change nothing: the error comes from elsewhere.
    if (now != index.end() && prints[now->second] == good->second.fingerprint) return;
    swapped.insert(key);
    swap.push_back(key);
  };
  for (const Diagnostics* list : {&loaded.diagnostics, &first.diagnostics}) {
    for (const Diagnostic& d : *list) {
      if (d.severity == Severity::kError && !d.resource.empty()) consider(d.resource);
    }
  }
  std::set<std::string> broken_paths;
  for (const Diagnostic& d : loaded.diagnostics) {
    if (d.severity == Severity::kError && d.resource.empty()) broken_paths.insert(d.origin.file);
  }
  if (!broken_paths.empty()) {
    for (const auto& [key, version] : good_) {
      if (index.count(key) != 0) continue;
      for (const std::string& path : broken_paths) {
        if (covered_by(version.file, path)) {
          consider(key);
          break;
        }
      }
    }
  }

  std::vector<Resource> recovered = recover(swap);
  const std::vector<uint64_t> prints_loaded = recovered.empty() ? std::vector<uint64_t>{} : prints;
  std::vector<uint64_t> final_prints;
  if (recovered.empty()) {
    result.compiled = std::move(first);
    result.diagnostics = std::move(loaded.diagnostics);
    result.diagnostics.insert(result.diagnostics.end(), result.compiled.diagnostics.begin(),
                              result.compiled.diagnostics.end());
    final_prints = std::move(prints);
  } else {
    std::vector<Resource> resources;
    resources.reserve(loaded.resources.size() + recovered.size());
    for (size_t i = 0; i < loaded.resources.size(); ++i) {
      if (swapped.count(loaded.resources[i].key()) != 0) continue;
      resources.push_back(std::move(loaded.resources[i]));
      final_prints.push_back(prints[i]);
    }
    for (Resource& r : recovered) {
      final_prints.push_back(good_.at(r.key()).fingerprint);
      resources.push_back(std::move(r));
    }
    loaded.resources = std::move(resources);
    result.compiled = config::compile(loaded.resources, options);

    result.diagnostics = std::move(loaded.diagnostics);
    for (const Diagnostic& d : first.diagnostics) {
      if (is_error_about(d, swapped)) result.diagnostics.push_back(d);
    }
    result.diagnostics.insert(result.diagnostics.end(), result.compiled.diagnostics.begin(),
                              result.compiled.diagnostics.end());
    for (const Resource& r : loaded.resources) {
      if (swapped.count(r.key()) == 0) continue;
      Diagnostic d;
      d.severity = Severity::kWarning;
      d.origin = r.origin;
      d.resource = r.key();
      d.message = "serving its last good version (read from " + r.origin.to_string() +
                  ") until the error above is fixed";
      result.diagnostics.push_back(std::move(d));
      result.kept.push_back(r.key());
    }
  }

  // Remember the versions that compiled cleanly; forget keys no longer present.
  std::unordered_set<std::string> failing;
  for (const Diagnostic& d : result.compiled.diagnostics) {
    if (d.severity == Severity::kError && !d.resource.empty()) failing.insert(d.resource);
  }
  std::map<std::string, Applied> applied;
  std::map<std::string, Version> good;
  for (size_t i = 0; i < loaded.resources.size(); ++i) {
    Resource& r = loaded.resources[i];
    std::string key = r.key();
    if (applied.count(key) != 0) continue;  // a duplicate, reported by the compiler
    bool kept = swapped.count(key) != 0;
    uint64_t loaded_print = final_prints[i];
    if (kept) {
      auto now = index.find(key);
      loaded_print = now == index.end() ? 0 : prints_loaded[now->second];
    }
    applied.emplace(key, Applied{r.origin.file, final_prints[i], loaded_print});
    if (kept || failing.count(key) != 0) {
      auto old = good_.find(key);
      if (old != good_.end()) good.emplace(key, std::move(old->second));
      continue;
    }
    Version v;
    v.file = r.origin.file;
    v.fingerprint = final_prints[i];
    auto text = loaded.file_texts.find(r.origin.file);
    if (text != loaded.file_texts.end()) {
      v.text = text->second;
    } else {
      v.resource = std::make_shared<const Resource>(r);
    }
    good.emplace(std::move(key), std::move(v));
  }

  for (const auto& [key, now] : applied) {
    auto before = applied_.find(key);
    if (before == applied_.end()) {
      ++result.changes.added;
    } else if (before->second.fingerprint != now.fingerprint) {
      ++result.changes.changed;
    }
  }
  for (const auto& [key, before] : applied_) {
    if (applied.count(key) == 0) ++result.changes.removed;
  }

  result.resources = loaded.resources.size();
  result.inputs = std::move(loaded.resources);
  applied_ = std::move(applied);
  good_ = std::move(good);
  texts_ = std::move(loaded.file_texts);
  return result;
}

}  // namespace proxenos::config
