#include "config/file_source.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>
#include <system_error>
#include <thread>

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
  const YAML::Node kind_node = child(doc, "kind");
  if (kind_node.IsScalar()) res.kind = kind_node.Scalar();
  const YAML::Node meta = child(doc, "metadata");
  const YAML::Node name_node = child(meta, "name");
  if (name_node.IsScalar()) res.name = name_node.Scalar();
  const YAML::Node namespace_node = child(meta, "namespace");
  if (namespace_node.IsScalar() && !namespace_node.Scalar().empty()) {
    res.namespace_ = namespace_node.Scalar();
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

// Decodes the documents of one yaml-cpp stream, in order.
void decode_documents(const std::vector<YAML::Node>& docs, const std::string& file,
                      LoadResult& out) {
  for (const YAML::Node& doc : docs) {
    // Empty documents (a stray `---`, a file of comments) are normal in hand-written YAML.
    if (!doc.IsDefined() || doc.IsNull()) continue;
    try {
      decode_document(doc, file, out);
    } catch (const YAML::Exception& e) {
      file_error(out, file, line_of(doc), std::string("cannot read document: ") + e.what());
    }
  }
}

void parse_sequential(const std::string& text, const std::string& file_name, LoadResult& out) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    int line = e.mark.is_null() ? 0 : e.mark.line + 1;
    file_error(out, file_name, line, "invalid YAML: " + e.msg);
    return;
  }
  decode_documents(docs, file_name, out);
}

// yaml-cpp's scanner costs about 2.5 us a line, so large multi-document files are parsed in
// parallel. Below this size the threads cost more than they save.
constexpr size_t kParallelMinBytes = 64 * 1024;

// A run of whole documents: text[begin, end), whose first byte is on 0-based line `line`.
struct Block {
  size_t begin = 0;
  size_t end = 0;
  int line = 0;
};

// Cuts `text` into about `want` blocks of similar size at document starts. yaml-cpp ends every
// document at a line that begins with `---` followed by a blank, a line break or the end of the
// input, whatever the context (inside a scalar it ends the scalar or fails), so a stream that
// parses also parses block by block, into the same documents. Returns no blocks when cutting is
// not safe: directives (`%YAML`, `%TAG`) carry over to later documents, yaml-cpp versions
// disagree on whether a lone CR ends a line, and NUL bytes or a UTF-16 BOM mean the text is not
// UTF-8.
std::vector<Block> split_blocks(std::string_view text, size_t want) {
  std::vector<Block> blocks;
  if (text.size() < 2 ||
      (static_cast<unsigned char>(text[0]) == 0xFE &&
       static_cast<unsigned char>(text[1]) == 0xFF) ||
      (static_cast<unsigned char>(text[0]) == 0xFF &&
       static_cast<unsigned char>(text[1]) == 0xFE)) {
    return blocks;
  }
  if (std::memchr(text.data(), '\0', text.size()) != nullptr) return blocks;
  for (size_t cr = text.find('\r'); cr != std::string_view::npos; cr = text.find('\r', cr + 1)) {
    if (cr + 1 == text.size() || text[cr + 1] != '\n') return blocks;
  }

  std::vector<std::pair<size_t, int>> starts;  // (offset, line) of each `---` line
  int line = 0;
  size_t pos = text.starts_with("\xEF\xBB\xBF") ? 3 : 0;  // yaml-cpp drops a UTF-8 BOM
  while (pos < text.size()) {
    char c = text[pos];
    if (c == '%') return {};
    if (c == '-' && text.compare(pos, 3, "---") == 0) {
      size_t after = pos + 3;
      if (after == text.size() || text[after] == ' ' || text[after] == '\t' ||
          text[after] == '\n' || text.compare(after, 2, "\r\n") == 0) {
        if (pos > 0) starts.emplace_back(pos, line);
      }
    }
    const void* nl = std::memchr(text.data() + pos, '\n', text.size() - pos);
    if (nl == nullptr) break;
    pos = static_cast<size_t>(static_cast<const char*>(nl) - text.data()) + 1;
    ++line;
  }
  if (starts.empty() || want < 2) return blocks;

  // Cut at the first document start at or after each ideal boundary.
  size_t target = text.size() / want;
  Block current;
  for (const auto& [offset, start_line] : starts) {
    if (offset - current.begin < target) continue;
    current.end = offset;
    blocks.push_back(current);
    current = Block{offset, 0, start_line};
  }
  current.end = text.size();
  blocks.push_back(current);
  if (blocks.size() < 2) blocks.clear();
  return blocks;
}

// Parses and decodes the blocks on a few threads; false when a block is not valid YAML (the
// caller then parses the whole text again in one piece, so the error is reported exactly as
// before: the first error in the file, with yaml-cpp's message for the text as a whole).
bool parse_parallel(const std::string& text, const std::vector<Block>& blocks, size_t threads,
                    const std::string& file_name, LoadResult& out) {
  std::vector<LoadResult> results(blocks.size());
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr crash;
  std::atomic<bool> crashed{false};

  auto work = [&] {
    for (size_t i = next++; i < blocks.size() && !failed && !crashed; i = next++) {
      const Block& b = blocks[i];
      try {
        // Leading line breaks put the block's nodes on their lines in the file (yaml-cpp has no
        // way to start counting elsewhere, and skips blank lines quickly). Only Mark::pos, a
        // character offset nothing here reads, differs from a one-pass parse.
        std::string piece;
        piece.reserve(static_cast<size_t>(b.line) + (b.end - b.begin));
        piece.append(static_cast<size_t>(b.line), '\n');
        piece.append(text, b.begin, b.end - b.begin);
        std::vector<YAML::Node> docs;
        try {
          docs = YAML::LoadAll(piece);
        } catch (const YAML::Exception&) {
          failed = true;
          return;
        }
        results[i].resources.reserve(docs.size());
        decode_documents(docs, file_name, results[i]);
      } catch (...) {
        if (!crashed.exchange(true)) crash = std::current_exception();
        return;
      }
    }
  };

  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) {
    try {
      pool.emplace_back(work);
    } catch (const std::system_error&) {
      break;  // no more threads: the others do the work
    }
  }
  work();
  for (std::thread& t : pool) t.join();
  if (crashed) std::rethrow_exception(crash);
  if (failed) return false;

  for (LoadResult& r : results) {
    out.resources.insert(out.resources.end(), std::make_move_iterator(r.resources.begin()),
                         std::make_move_iterator(r.resources.end()));
    out.diagnostics.insert(out.diagnostics.end(), std::make_move_iterator(r.diagnostics.begin()),
                           std::make_move_iterator(r.diagnostics.end()));
  }
  return true;
}

}  // namespace

void parse_documents(const std::string& text, const std::string& file_name, LoadResult& out) {
  size_t threads = std::min<size_t>(std::thread::hardware_concurrency(), 8);
  if (text.size() >= kParallelMinBytes && threads > 1) {
    // A few blocks per thread even out documents of different sizes and threads that get less
    // CPU than the others.
    std::vector<Block> blocks = split_blocks(text, threads * 2);
    if (!blocks.empty() &&
        parse_parallel(text, blocks, std::min(threads, blocks.size()), file_name, out)) {
      return;
    }
  }
  parse_sequential(text, file_name, out);
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
    std::ostringstream stream;
    stream << in.rdbuf();
    auto text = std::make_shared<const std::string>(std::move(stream).str());
    parse_documents(*text, file, out);
    out.file_texts.emplace(file, std::move(text));
  }
  return out;
}

}  // namespace proxenos::config
