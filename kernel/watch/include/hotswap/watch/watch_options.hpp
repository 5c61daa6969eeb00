// The vocabulary of hotswap::watch::watcher (watcher.hpp): what it reports and the
// options it takes. Public names, brought in by <hotswap/watch.hpp>.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <utility>

namespace hotswap::watch {

/// How a watcher learns that something in its directory changed.
enum class watch_mode {
  /// inotify where the process can have it, else polling (see
  /// watcher::inotify_error() for why it could not).
  automatic,
  /// inotify only: constructing the watcher throws if it is unavailable.
  inotify,
  /// List and stat the directory every poll_interval. For file systems whose
  /// inotify events miss writers elsewhere (NFS, SMB, FUSE, some container
  /// mounts) and for processes out of inotify instances or watches.
  poll,
};

enum class change_kind {
  changed,  ///< new, or its content differs from the last reported content
  removed,  ///< gone (deleted, renamed away, or no longer a regular file)
};

/// One reported change. For `removed`, hash, size and mtime describe the last
/// content that was reported (or found at the start) under that name.
struct file_change {
  std::filesystem::path path;  ///< directory / name
  change_kind kind = change_kind::changed;
  std::uint64_t hash = 0;  ///< XXH64 of the content (equals `xxhsum -H1 path`)
  std::uint64_t size = 0;  ///< bytes hashed
  std::chrono::sys_time<std::chrono::nanoseconds> mtime{};
};

/// Which names in the directory are watched. Gets the name only (no
/// directory); an empty filter accepts every regular file. A filter that
/// throws is reported through on_error and rejects the name.
using file_filter = std::function<bool(std::string_view name)>;

/// Accepts names ending in `suffix`, e.g. ".so".
inline file_filter name_ends_with(std::string suffix) {
  return [suffix = std::move(suffix)](std::string_view name) { return name.ends_with(suffix); };
}

/// Accepts exactly `wanted`, e.g. "app.toml" (an editor's temporary and backup
/// files next to it are then ignored).
inline file_filter name_equals(std::string wanted) {
  return [wanted = std::move(wanted)](std::string_view name) { return name == wanted; };
}

struct watch_options {
  /// Which names to watch. Empty: every regular file in the directory.
  file_filter filter{};

  /// A file must see no change for this long before its content is hashed and
  /// reported, so a build or save done in several steps is reported once. A
  /// linker or an editor finishes a save in a few ms; raise it for writers
  /// that pause between steps (copies over slow networks), lower it only if
  /// reload latency matters more than an occasional extra hash.
  std::chrono::nanoseconds debounce = std::chrono::milliseconds(50);

  watch_mode mode = watch_mode::automatic;

  /// Polling only: how often the directory is listed. A scan costs one
  /// readdir and one stat per matching file; a change is reported within
  /// poll_interval + debounce.
  std::chrono::nanoseconds poll_interval = std::chrono::milliseconds(250);

  /// Report the files present at construction as `changed` (once quiet), for
  /// a host that loads its initial files through the callback. Default: they
  /// are the baseline, and only later changes are reported.
  bool report_existing = false;

  /// Errors met after construction (a file that cannot be read, a directory
  /// that vanished, an exception thrown by the callback). Called on the
  /// thread that drives the watcher; must not throw. Empty: one line on stderr.
  std::function<void(const std::exception&)> on_error{};
};

}  // namespace hotswap::watch
