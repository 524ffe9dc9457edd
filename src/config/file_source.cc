#include "config/file_source.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "config/decode.h"

namespace proxenos::config {

namespace {

namespace fs = std::filesystem;

bool is_config_file(const fs::path& p) {
  std::string ext = p.extension().string();
  return ext == ".yaml" || ext == ".yml" || ext == ".json";
}

bool is_hidden(const fs::path& p) {
  std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

void file_error(LoadResult& out, const std::string& file, int line, std::string message) {
  Diagnostic d;
  d.origin.file = file;
  d.origin.line = line;
  d.message = std::move(message);
  out.diagnostics.push_back(std::move(d));
}

int line_of(const YAML::Node& node) {
  if (!node.IsDefined() || node.Mark().is_null()) return 0;
  return node.Mark().line + 1;
}

// Reads the envelope of one Kubernetes-style object. Problems with the envelope make the object
// unusable (nobody could even name it), so they drop the document.
void decode_document(const YAML::Node& doc, const std::string& file, LoadResult& out) {
  int doc_line = line_of(doc);
  if (!doc.IsMap()) {
    file_error(out, file, doc_line, "a document must be a map (a Kubernetes object)");
    return;
  }

  Resource res;
  res.origin.file = file;
  res.origin.line = doc_line;
  res.source_id = "file";
  res.object = doc;

  // Name the resource before reading it strictly, so that even its envelope errors say which
  // object they are about.
  YAML::Node kind_node = child(doc, "kind");
  if (kind_node.IsScalar()) res.kind = kind_node.Scalar();
  YAML::Node meta = child(doc, "metadata");
  if (child(meta, "name").IsScalar()) res.name = child(meta, "name").Scalar();
  if (child(meta, "namespace").IsScalar() && !child(meta, "namespace").Scalar().empty()) {
    res.namespace_ = child(meta, "namespace").Scalar();
  }

  // The envelope is read leniently about unknown keys (status, metadata.uid, ... are normal).
  Diagnostics envelope;
  Reporter r(res, &envelope);
  MapReader top(r, doc, "", doc);
  std::optional<std::string> kind = top.string("kind");
  std::optional<std::string> api_version = top.string("apiVersion");

  // `kubectl get -o yaml` wraps objects in a List.
  if (kind && (*kind == "List" || (kind->ends_with("List") && top.has("items")))) {
    YAML::Node items = top.take("items");
    if (!items.IsDefined()) return;
    if (!items.IsSequence()) {
      file_error(out, file, line_of(top.where("items")), "items: must be a list of objects");
      return;
    }
    for (const YAML::Node& item : items) decode_document(item, file, out);
    return;
  }

  std::optional<MapReader> metadata = top.map("metadata");
  std::optional<std::string> name;
  std::optional<std::string> ns;
  std::optional<std::vector<std::pair<std::string, std::optional<std::string>>>> labels;
  std::optional<std::vector<std::pair<std::string, std::optional<std::string>>>> annotations;
  if (metadata && metadata->is_map()) {
    name = metadata->string("name");
    ns = metadata->string("namespace");
    labels = metadata->string_map("labels", false);
    annotations = metadata->string_map("annotations", false);
  }
  if (kind) res.kind = *kind;
  if (name) res.name = *name;
  if (ns && !ns->empty()) res.namespace_ = *ns;

  // Missing identity is reported without a resource label: there is no name to give.
  auto missing = [&](const char* field, const YAML::Node& at) {
    Diagnostic d;
    d.origin = res.origin;
    d.origin.line = line_of(at) ? line_of(at) : doc_line;
    d.resource = kind && name ? res.key() : "";
    d.field = field;
    d.message = "is required";
    envelope.push_back(std::move(d));
  };
  if (!top.has("apiVersion")) missing("apiVersion", doc);
  if (!top.has("kind")) missing("kind", doc);
  if (!top.has("metadata")) {
    missing("metadata.name", doc);
  } else if (metadata && metadata->is_map() && !metadata->has("name")) {
    missing("metadata.name", metadata->node());
  }

  if (api_version) res.api_version = *api_version;
  if (labels) {
    for (auto& [k, v] : *labels) res.labels[k] = v.value_or("");
  }
  if (annotations) {
    for (auto& [k, v] : *annotations) res.annotations[k] = v.value_or("");
  }

  YAML::Node spec = top.take("spec");
  if (spec.IsDefined()) res.spec = spec;

  // ambassador_id may be one string or a list of them.
  if (spec.IsDefined() && spec.IsMap()) {
    MapReader spec_reader(r, spec, "spec", doc);
    YAML::Node id = spec_reader.take("ambassador_id");
    if (id.IsDefined()) {
      if (id.IsScalar()) {
        if (auto s = read_string(r, id, spec_reader.where("ambassador_id"), "spec.ambassador_id")) {
          res.ambassador_id.push_back(*s);
        }
      } else if (id.IsSequence()) {
        for (size_t i = 0; i < id.size(); ++i) {
          if (auto s =
                  read_string(r, id[i], id[i], "spec.ambassador_id[" + std::to_string(i) + "]")) {
            res.ambassador_id.push_back(*s);
          }
        }
      } else {
        r.error(spec_reader.where("ambassador_id"), "spec.ambassador_id",
                "must be a string or a list of strings");
      }
    }
  }

  bool bad = has_errors(envelope);
  out.diagnostics.insert(out.diagnostics.end(), envelope.begin(), envelope.end());
  if (bad) return;
  out.resources.push_back(std::move(res));
}

}  // namespace

void parse_documents(const std::string& text, const std::string& file_name, LoadResult& out) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    int line = e.mark.is_null() ? 0 : e.mark.line + 1;
    file_error(out, file_name, line, "invalid YAML: " + e.msg);
    return;
  }
  for (const YAML::Node& doc : docs) {
    // Empty documents (a stray `---`, a file of comments) are normal in hand-written YAML.
    if (!doc.IsDefined() || doc.IsNull()) continue;
    try {
      decode_document(doc, file_name, out);
    } catch (const YAML::Exception& e) {
      file_error(out, file_name, line_of(doc), std::string("cannot read document: ") + e.what());
    }
  }
}

LoadResult load_path(const std::string& path) {
  LoadResult out;
  std::error_code ec;
  fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status)) {
    file_error(out, path, 0, "cannot read: no such file or directory");
    return out;
  }

  std::vector<std::string> files;
  if (fs::is_directory(status)) {
    fs::recursive_directory_iterator it(path, fs::directory_options::skip_permission_denied, ec);
    fs::recursive_directory_iterator end;
    while (!ec && it != end) {
      const fs::directory_entry& entry = *it;
      if (is_hidden(entry.path())) {
        // Hidden entries include editors' swap files and Kubernetes ConfigMap mounts'
        // `..data` indirection; the visible symlinks point at the same files.
        if (entry.is_directory(ec)) it.disable_recursion_pending();
      } else if (entry.is_regular_file(ec) && is_config_file(entry.path())) {
        files.push_back(entry.path().string());
      }
      it.increment(ec);
    }
    if (ec) file_error(out, path, 0, "cannot list folder: " + ec.message());
    std::sort(files.begin(), files.end());
  } else {
    files.push_back(path);
  }

  for (const std::string& file : files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      file_error(out, file, 0, "cannot read file");
      continue;
    }
    std::ostringstream text;
    text << in.rdbuf();
    parse_documents(text.str(), file, out);
  }
  return out;
}

}  // namespace proxenos::config
