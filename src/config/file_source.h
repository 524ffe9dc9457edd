#pragma once
// The config folder source: a YAML/JSON file, or a folder read recursively (*.yaml, *.yml,
// *.json; multi-document). A file that is not valid YAML is reported by file and line and the
// rest still load.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/diagnostic.h"
#include "config/resource.h"

namespace proxenos::config {

struct LoadResult {
  std::vector<Resource> resources;
  Diagnostics diagnostics;
  // Each file's text as read (load_path only): the resource store keeps the texts its last good
  // versions came from, which costs far less memory than keeping their parsed trees.
  std::map<std::string, std::shared_ptr<const std::string>> file_texts;
};

// Reads `path` (file or folder). Files are read in sorted path order so results are stable.
LoadResult load_path(const std::string& path);

// Parses one file's text (exposed for tests and for the Kubernetes annotation source).
void parse_documents(const std::string& text, const std::string& file_name, LoadResult& out);

}  // namespace proxenos::config
