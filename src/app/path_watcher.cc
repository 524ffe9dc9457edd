#include "app/path_watcher.h"

#include <errno.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <unordered_set>

namespace fs = std::filesystem;

namespace proxenos::app {

namespace {

// Folders: everything that adds, removes, replaces or rewrites an entry. IN_MODIFY keeps pushing
// the reload back while a large file is still being written (`kubectl cp` streams it), so the
// gateway does not load a half-written file; the kernel merges repeated unread IN_MODIFY events.
constexpr uint32_t kDirMask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_MODIFY |
                              IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF |
                              IN_ONLYDIR;
// The file itself (following a symlink, as in a ConfigMap mount whose keys point into `..data`).
constexpr uint32_t kFileMask =
    IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;

// Kubernetes updates a ConfigMap volume by writing a new hidden folder and renaming a `..data`
// symlink onto it, so this name matters even though hidden names are otherwise ignored.
constexpr const char* kConfigMapDataLink = "..data";

bool has_config_extension(const std::string& name) {
  auto ends_with = [&](const char* suffix) {
    size_t n = std::strlen(suffix);
    return name.size() >= n && name.compare(name.size() - n, n, suffix) == 0;
  };
  return ends_with(".yaml") || ends_with(".yml") || ends_with(".json");
}

// Same rule as the folder loader: hidden entries (editor swap files, `..2024_...` ConfigMap
// folders) are never read, so changes to them cannot change the configuration.
bool is_hidden(const std::string& name) {
  return !name.empty() && name[0] == '.';
}

}  // namespace

PathWatcher::PathWatcher(net::EventLoop& loop, std::string path, std::function<void()> on_change,
                         uint64_t debounce_ms)
    : loop_(loop),
      path_(std::move(path)),
      on_change_(std::move(on_change)),
      debounce_ms_(debounce_ms),
      timer_(loop, [this] { fire(); }) {}

PathWatcher::~PathWatcher() {
  if (fd_ >= 0) {
    loop_.remove(fd_);
    close(fd_);
  }
}

bool PathWatcher::start(std::string* error) {
  fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd_ < 0) {
    if (error) *error = std::string("inotify_init1: ") + std::strerror(errno);
    return false;
  }
  std::error_code ec;
  is_directory_ = fs::is_directory(path_, ec);
  if (!is_directory_) {
    fs::path p(path_);
    file_name_ = p.filename().string();
  }
  resync();
  if (dirs_.empty() && file_wd_ < 0 && parent_wd_ < 0) {
    if (error) *error = "cannot watch " + path_ + " or its folder";
    close(fd_);
    fd_ = -1;
    return false;
  }
  loop_.add(fd_, EPOLLIN, this);
  return true;
}

int PathWatcher::add_watch(const std::string& path, uint32_t mask) {
  int wd = inotify_add_watch(fd_, path.c_str(), mask);
  if (wd < 0 && errno != ENOENT && errno != ENOTDIR) {
    // ENOSPC here means fs.inotify.max_user_watches is exhausted; say so rather than go quiet.
    spdlog::warn("config watch: cannot watch {}: {}", path, std::strerror(errno));
  }
  return wd;
}

void PathWatcher::watch_tree(const std::string& dir) {
  int wd = add_watch(dir, kDirMask);
  if (wd < 0) return;
  dirs_[wd] = dir;
  std::error_code ec;
  fs::directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
  for (fs::directory_iterator end; !ec && it != end; it.increment(ec)) {
    const fs::directory_entry& entry = *it;
    std::string name = entry.path().filename().string();
    std::error_code type_ec;
    // Symlinked folders are not followed, matching the loader's recursive_directory_iterator.
    if (is_hidden(name) || !entry.is_directory(type_ec) || entry.is_symlink(type_ec)) continue;
    watch_tree(entry.path().string());
  }
}

void PathWatcher::resync() {
  if (is_directory_) {
    // A folder moved out of the tree keeps its watch descriptor (and its old path here): rebuild
    // the map from the file system and drop descriptors that are no longer part of it.
    std::unordered_map<int, std::string> old = std::move(dirs_);
    dirs_.clear();
    watch_tree(path_);
    for (const auto& [wd, dir] : old) {
      if (!dirs_.count(wd)) inotify_rm_watch(fd_, wd);
    }
    return;
  }
  fs::path parent = fs::path(path_).parent_path();
  int parent_wd = add_watch(parent.empty() ? "." : parent.string(), kDirMask);
  int file_wd = add_watch(path_, kFileMask);
  // Renaming a new file over the old one leaves the old inode's watch behind if something else
  // still links it; only the current file is of interest.
  if (file_wd_ >= 0 && file_wd_ != file_wd && file_wd_ != parent_wd) {
    inotify_rm_watch(fd_, file_wd_);
  }
  parent_wd_ = parent_wd;
  file_wd_ = file_wd;
}

bool PathWatcher::relevant(int wd, uint32_t mask, const std::string& name) const {
  if (mask & IN_Q_OVERFLOW) return true;  // events were lost: assume anything changed
  if (mask & (IN_DELETE_SELF | IN_MOVE_SELF)) return true;
  if (!is_directory_ && wd == file_wd_ && wd != parent_wd_) return true;
  if (name.empty()) return false;  // attributes of a watched folder itself
  if (name == kConfigMapDataLink) return true;
  if (!is_directory_) return wd == parent_wd_ && name == file_name_;
  if (is_hidden(name)) return false;
  if (mask & IN_ISDIR) {
    return (mask & (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO)) != 0;
  }
  return has_config_extension(name);
}

void PathWatcher::handle_event(int wd, uint32_t mask, const std::string& name) {
  if (mask & IN_IGNORED) {
    // The kernel dropped the watch (its folder or file is gone); resync() re-adds what exists.
    dirs_.erase(wd);
    if (wd == file_wd_) file_wd_ = -1;
    if (wd == parent_wd_) parent_wd_ = -1;
    return;
  }
  if (!relevant(wd, mask, name)) return;
  if (is_directory_ && (mask & IN_ISDIR) && (mask & (IN_CREATE | IN_MOVED_TO))) {
    // Watch a new folder at once: files copied into it right after its creation must be seen.
    auto it = dirs_.find(wd);
    if (it != dirs_.end()) watch_tree(it->second + "/" + name);
  }
  spdlog::debug("config watch: event 0x{:x} on {}", mask, name.empty() ? path_ : name);
  note_change();
}

void PathWatcher::on_io(uint32_t) {
  // Edge-triggered: drain the descriptor completely or the next burst would not wake us.
  alignas(inotify_event) char buf[8192];
  for (;;) {
    ssize_t n = read(fd_, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) spdlog::warn("config watch: read: {}", std::strerror(errno));
      return;
    }
    if (n == 0) return;
    for (ssize_t off = 0; off + static_cast<ssize_t>(sizeof(inotify_event)) <= n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
      std::string name = ev->len > 0 ? std::string(ev->name, strnlen(ev->name, ev->len)) : "";
      handle_event(ev->wd, ev->mask, name);
      off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
    }
  }
}

void PathWatcher::note_change() {
  uint64_t now = loop_.refresh_now();
  if (first_change_ms_ == 0) first_change_ms_ = now;
  uint64_t due = now + debounce_ms_;
  uint64_t latest = first_change_ms_ + kReloadMaxDelayMs;
  if (due > latest) due = latest;
  timer_.arm(due > now ? due - now : 1);
}

void PathWatcher::fire() {
  first_change_ms_ = 0;
  resync();
  on_change_();
}

}  // namespace proxenos::app
