#pragma once
// The resource store between the config sources and the compiler. It remembers the last good
// version of every resource, so an update that makes a resource invalid (or a file that stops
// parsing) keeps the previous version serving while the error is reported on it, and it counts
// what each load added, changed and removed.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/compiler.h"
#include "config/file_source.h"

namespace proxenos::config {

struct ResourceChanges {
  size_t added = 0;
  size_t changed = 0;
  size_t removed = 0;
};

struct StoreResult {
  CompileResult compiled;
  // Everything to report about this load: the sources' file errors, the compiler's errors and
  // warnings (including those of new versions that were set aside), and one warning per
  // resource that serves its last good version.
  Diagnostics diagnostics;
  ResourceChanges changes;        // against the previous load's applied resources
  std::vector<std::string> kept;  // keys serving their last good version
  size_t resources = 0;           // resources compiled
  // The resources compiled, handed back so the caller can free them after applying the snapshot:
  // freeing ten thousand YAML trees takes about as long as compiling them.
  std::vector<Resource> inputs;
};

class ResourceStore {
 public:
  // Compiles `loaded`, swapping in the last good version of each resource whose new version is
  // invalid, or that vanished because its file no longer parses or cannot be read.
  StoreResult compile(LoadResult loaded, const CompileOptions& options);

  size_t size() const { return applied_.size(); }

 private:
  struct Version {
    std::string file;
    std::shared_ptr<const std::string> text;   // the file's text this version was read from
    std::shared_ptr<const Resource> resource;  // kept whole only when there is no file text
    uint64_t fingerprint = 0;
  };
  struct Applied {
    std::string file;
    uint64_t fingerprint = 0;  // of the version serving
    uint64_t loaded = 0;       // of the version the source holds (differs while one is kept)
  };
  std::vector<Resource> recover(const std::vector<std::string>& keys) const;

  std::map<std::string, Version> good_;     // last version of each key that compiled cleanly
  std::map<std::string, Applied> applied_;  // key -> the version applied last
  std::map<std::string, std::shared_ptr<const std::string>> texts_;  // file -> last text read
};

// A stable hash of a YAML tree's content (not its layout or comments).
uint64_t fingerprint(const YAML::Node& node);

}  // namespace proxenos::config
