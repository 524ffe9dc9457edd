#include "app/commands.h"

#include <chrono>
#include <cstdio>

#include "config/compiler.h"
#include "config/file_source.h"

namespace proxenos::app {

namespace {
struct Compiled {
  config::LoadResult loaded;
  config::CompileResult result;
  double load_millis = 0;
  double compile_millis = 0;
};

Compiled compile_path(const std::string& path, const std::string& ambassador_id) {
  Compiled c;
  auto t0 = std::chrono::steady_clock::now();
  c.loaded = config::load_path(path);
  auto t1 = std::chrono::steady_clock::now();
  config::CompileOptions options;
  options.ambassador_id = ambassador_id;
  c.result = config::compile(c.loaded.resources, options);
  auto t2 = std::chrono::steady_clock::now();
  c.load_millis = std::chrono::duration<double, std::milli>(t1 - t0).count();
  c.compile_millis = std::chrono::duration<double, std::milli>(t2 - t1).count();
  return c;
}
}  // namespace

int validate_command(const std::string& path, const std::string& ambassador_id) {
  Compiled c = compile_path(path, ambassador_id);
  config::Diagnostics all = c.loaded.diagnostics;
  all.insert(all.end(), c.result.diagnostics.begin(), c.result.diagnostics.end());
  size_t errors = 0, warnings = 0;
  for (const auto& d : all) {
    std::printf("%s\n", d.to_string().c_str());
    (d.severity == config::Severity::kError ? errors : warnings)++;
  }
  std::printf("%zu resources, %zu errors, %zu warnings (read in %.1f ms, compiled in %.1f ms)\n",
              c.loaded.resources.size(), errors, warnings, c.load_millis, c.compile_millis);
  return errors == 0 ? 0 : 1;
}

int routes_command(const std::string& path, const std::string& ambassador_id) {
  Compiled c = compile_path(path, ambassador_id);
  config::Diagnostics all = c.loaded.diagnostics;
  all.insert(all.end(), c.result.diagnostics.begin(), c.result.diagnostics.end());
  for (const auto& d : all) {
    if (d.severity == config::Severity::kError) std::fprintf(stderr, "%s\n", d.to_string().c_str());
  }
  std::fputs(config::format_routes(*c.result.snapshot).c_str(), stdout);
  return config::has_errors(all) ? 1 : 0;
}

}  // namespace proxenos::app
