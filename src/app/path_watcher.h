#pragma once
// Watches the `--config` path with inotify and calls back once per burst of changes, so editing a
// file, `kubectl cp`, or a ConfigMap update reloads the gateway without a SIGHUP.
//
// Lives in app, not config: config parses and compiles resources and knows nothing of file
// descriptors or event loops.

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>

#include "net/event_loop.h"

namespace proxenos::app {

// Quiet time after the last change before reloading: an editor's save (write temp, rename, chmod)
// or `kubectl cp` of a folder is a burst of events that must yield one reload, not one per event.
constexpr uint64_t kReloadDebounceMs = 50;
// Upper bound on how long a continuous stream of changes can postpone the reload.
constexpr uint64_t kReloadMaxDelayMs = 2000;

class PathWatcher final : public net::IoHandler {
 public:
  // `on_change` runs on `loop`'s thread, debounced. Call start() before the loop runs.
  PathWatcher(net::EventLoop& loop, std::string path, std::function<void()> on_change,
              uint64_t debounce_ms = kReloadDebounceMs);
  ~PathWatcher();
  PathWatcher(const PathWatcher&) = delete;
  PathWatcher& operator=(const PathWatcher&) = delete;

  // Sets up the inotify watches and registers with the loop. False (with `error`) when inotify is
  // unavailable or `path` cannot be watched; the caller keeps running, reloading on SIGHUP only.
  bool start(std::string* error);

  void on_io(uint32_t events) override;

 private:
  // Whether an event on `name` inside the watched directory `dir_wd` can change the config.
  bool relevant(int wd, uint32_t mask, const std::string& name) const;
  void handle_event(int wd, uint32_t mask, const std::string& name);
  void note_change();
  void fire();
  // Brings the set of watches back in line with the file system: watches every visible folder
  // under a folder root (dropping ones moved away), or the file and its parent folder.
  void resync();
  void watch_tree(const std::string& dir);
  int add_watch(const std::string& path, uint32_t mask);

  net::EventLoop& loop_;
  std::string path_;
  std::function<void()> on_change_;
  uint64_t debounce_ms_;
  int fd_ = -1;
  bool is_directory_ = false;
  std::string file_name_;                      // single-file mode: the file's base name
  int file_wd_ = -1;                           // single-file mode: the file itself
  int parent_wd_ = -1;                         // single-file mode: its folder
  std::unordered_map<int, std::string> dirs_;  // watch descriptor -> folder path
  uint64_t first_change_ms_ = 0;               // start of the pending burst, 0 when none
  net::Timer timer_;
};

}  // namespace proxenos::app
