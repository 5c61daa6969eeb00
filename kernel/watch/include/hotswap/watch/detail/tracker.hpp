// Which files of one directory changed, decided from hints.
//
// Notifications (inotify events, or a directory scan when polling) only say
// "look at this name". The tracker turns them into reports with two rules:
//
//   Debounce: a hinted name is checked only after it has been quiet for the
//   debounce window. Every new hint restarts the window, and when the window
//   ends the file's stat must still match the stat taken at the last hint, so
//   a build that writes in several steps is read once, after its last step.
//
//   Content: the check reads the whole file, hashes it, and stats it again
//   (a change during the read means it is not quiet yet). It reports only if
//   the hash or size differs from what was last reported under that name, so
//   a save of identical bytes, a touch, or a rename of an identical file
//   reports nothing.
//
// A file still being written when its window ends (a writer that pauses
// longer than the debounce with the file open) can still be read half-way;
// the debounce and the stat-around-the-read make that rare, not impossible.
// Refusing a truncated plugin or a half-written config is the loader's job
// (ELF/size checks, a parser's errors), and the completed write reports again.
//
// Not thread-safe: one thread drives it (the watcher's, or the host's).
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <hotswap/unique_fd.hpp>
#include "hash.hpp"
#include "../watch_options.hpp"

namespace hotswap::watch::detail {

/// What stat(2) says about a file, reduced to what tells two versions apart.
/// The inode catches a rename-into-place of a file with the same size and
/// mtime; ctime catches writers that restore the mtime.
struct file_stamp {
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  std::int64_t ctime_ns = 0;
  ino_t inode = 0;
  dev_t device = 0;

  static file_stamp of(const struct stat& st) noexcept {
    auto ns = [](const timespec& t) { return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec; };
    return {static_cast<std::uint64_t>(st.st_size), ns(st.st_mtim), ns(st.st_ctim), st.st_ino, st.st_dev};
  }
  friend bool operator==(const file_stamp&, const file_stamp&) = default;
};

class change_tracker {
 public:
  using clock = std::chrono::steady_clock;
  using deliver_fn = std::function<void(const file_change&)>;
  using report_fn = std::function<void(const std::exception&)>;

  /// File timestamps come from a coarse clock (one jiffy, up to 10 ms, on
  /// local Linux file systems; a second or two on some others), so a file
  /// rewritten within the tick of our read can keep its size and mtime. A
  /// scan cannot see such a change; files whose mtime is this close to the
  /// moment they were hashed are therefore hashed again by later scans until
  /// they are older ("racily clean", as git calls it). Events need no such care.
  static constexpr std::chrono::nanoseconds racy_window = std::chrono::seconds(1);

  change_tracker(std::string directory, file_filter filter, std::chrono::nanoseconds debounce, deliver_fn deliver,
                 report_fn report)
      : directory_(std::move(directory)),
        filter_(std::move(filter)),
        debounce_(debounce),
        deliver_(std::move(deliver)),
        report_(std::move(report)),
        read_buffer_(std::make_unique<std::byte[]>(read_buffer_size)) {}

  /// The filter's verdict; a filter that throws is reported and rejects.
  bool accepts(std::string_view name) {
    if (!filter_) return true;
    try {
      return filter_(name);
    } catch (const std::exception& e) {
      report(e);
    } catch (...) {
      report(std::runtime_error("hotswap::watch::watcher: the filter threw a non-standard exception"));
    }
    return false;
  }

  /// Learns what the directory holds now. With report_existing, every file is
  /// hinted instead, so it is reported once quiet. Throws if the directory
  /// cannot be listed.
  void start(bool report_existing, clock::time_point now) {
    std::error_code ec = for_each_file([&](const std::string& name, const struct stat& st) {
      if (report_existing) {
        hint(name, file_stamp::of(st), now);
      } else {
        learn(name);
      }
    });
    if (ec) throw std::system_error(ec, "hotswap::watch::watcher: cannot list '" + directory_ + "'");
  }

  /// Something happened to `name` (already filtered): check it once quiet.
  void hint(const std::string& name, clock::time_point now) { hint(name, stat_name(name), now); }

  /// A new name appeared. A symlink or a hard link arrives complete, so it is
  /// hinted; a new regular file is hinted by its close-write instead (hashing
  /// it now would read it half-written).
  void hint_created(const std::string& name, clock::time_point now) {
    struct stat st {};
    if (::lstat(path_of(name).c_str(), &st) != 0) return;
    if (S_ISLNK(st.st_mode) || (S_ISREG(st.st_mode) && st.st_nlink > 1)) hint(name, now);
  }

  /// Compares the directory with what was last reported and hints every name
  /// whose stat differs (or that vanished, or is racily clean). Used for
  /// polling, and after an inotify overflow.
  void scan(clock::time_point now) {
    std::set<std::string> present;
    std::error_code ec = for_each_file([&](const std::string& name, const struct stat& st) {
      present.insert(name);
      const file_stamp stamp = file_stamp::of(st);
      if (auto p = pending_.find(name); p != pending_.end()) {
        if (p->second.seen != stamp) hint(name, stamp, now);  // still changing
        return;
      }
      auto k = known_.find(name);
      if (k == known_.end() || k->second.stamp != stamp || k->second.racy || unreadable_.contains(name))
        hint(name, stamp, now);
    });
    const int error = ec.value();
    if (ec && error != ENOENT) {
      if (error != last_scan_error_)
        report(std::system_error(ec, "hotswap::watch::watcher: cannot list '" + directory_ + "'"));
      last_scan_error_ = error;
      return;  // unreadable is not empty: report nothing as removed
    }
    if (ec && last_scan_error_ != ENOENT)
      report(std::system_error(ec, "hotswap::watch::watcher: directory '" + directory_ + "' is gone"));
    last_scan_error_ = error;
    for (const auto& [name, file] : known_)
      if (!present.contains(name) && !pending_.contains(name)) hint(name, std::nullopt, now);
  }

  /// Checks every hinted name whose window has ended, reporting what changed.
  /// Stops early (leaving the rest pending) once *stop turns true.
  void check_due(clock::time_point now, const std::atomic<bool>* stop) {
    std::vector<std::pair<clock::time_point, std::string>> due;
    for (const auto& [name, p] : pending_)
      if (p.due <= now) due.emplace_back(p.due, name);
    std::sort(due.begin(), due.end());
    for (const auto& entry : due) {
      if (stop != nullptr && stop->load(std::memory_order_relaxed)) return;
      check(entry.second, now, stop);
    }
  }

  /// When check_due() has work next; time_point::max() if nothing is hinted.
  clock::time_point next_due() const noexcept {
    clock::time_point next = clock::time_point::max();
    for (const auto& entry : pending_) next = std::min(next, entry.second.due);
    return next;
  }

  /// Nothing hinted is waiting for its check.
  bool idle() const noexcept { return pending_.empty(); }

 private:
  static constexpr std::size_t read_buffer_size = std::size_t{64} << 10;

  struct known_file {
    file_stamp stamp;
    std::uint64_t hash = 0;
    bool racy = false;  ///< mtime within racy_window of the read: scans re-hash it
  };
  struct pending_check {
    clock::time_point due;
    std::optional<file_stamp> seen;  ///< stat at the last hint (nullopt: absent)
  };

  std::string path_of(std::string_view name) const {
    std::string path;
    path.reserve(directory_.size() + 1 + name.size());
    path.append(directory_);
    if (path.empty() || path.back() != '/') path.push_back('/');
    path.append(name);
    return path;
  }

  std::optional<file_stamp> stat_name(const std::string& name) const {
    struct stat st {};
    if (::stat(path_of(name).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    return file_stamp::of(st);
  }

  void hint(const std::string& name, std::optional<file_stamp> seen, clock::time_point now) {
    pending_[name] = {now + debounce_, seen};
  }

  /// Calls visit(name, stat) for each accepted regular file (symlinks
  /// followed). Returns the error that prevented listing the directory.
  template <class Visit>
  std::error_code for_each_file(Visit&& visit) {
    std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(directory_.c_str()), &::closedir);
    if (!dir) return {errno, std::system_category()};
    while (const dirent* entry = ::readdir(dir.get())) {
      const std::string name = entry->d_name;
      if (name == "." || name == ".." || !accepts(name)) continue;
      struct stat st {};
      if (::fstatat(::dirfd(dir.get()), name.c_str(), &st, 0) != 0 || !S_ISREG(st.st_mode)) continue;
      visit(name, st);
    }
    return {};
  }

  /// Records a file's current content without reporting it.
  void learn(const std::string& name) {
    const std::string path = path_of(name);
    hotswap::unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
    if (const int error = errno; !fd && error != ENOENT) {
      cannot_read(name, path, {error, std::system_category()});
      return;
    }
    struct stat st {};
    if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return;
    const auto read_start = wall_clock_now();
    content_digest digest;
    if (std::error_code ec = digest_fd(fd.get(), {read_buffer_.get(), read_buffer_size}, nullptr, digest)) {
      cannot_read(name, path, ec);
      return;
    }
    const file_stamp stamp = file_stamp::of(st);
    known_[name] = {stamp, digest.hash, is_racy(stamp, read_start)};
  }

  void check(const std::string& name, clock::time_point now, const std::atomic<bool>* stop) {
    auto p = pending_.find(name);
    if (p == pending_.end()) return;
    const std::string path = path_of(name);
    // O_NONBLOCK: a FIFO renamed over the name must not block the watcher.
    hotswap::unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
    const int open_error = fd ? 0 : errno;
    struct stat before {};
    if (!fd || ::fstat(fd.get(), &before) != 0 || !S_ISREG(before.st_mode)) {
      const int error = open_error;
      pending_.erase(p);
      if (error == 0 || error == ENOENT || error == ENOTDIR) {
        forget(name, path);
      } else {
        cannot_read(name, path, {error, std::system_category()});
      }
      return;
    }
    const file_stamp stamp = file_stamp::of(before);
    if (p->second.seen != stamp) {  // changed since the last hint: not quiet yet
      hint(name, stamp, now);
      return;
    }
    const auto read_start = wall_clock_now();
    content_digest digest;
    if (std::error_code ec = digest_fd(fd.get(), {read_buffer_.get(), read_buffer_size}, stop, digest)) {
      if (ec == std::errc::operation_canceled) return;  // stopping; stays pending
      pending_.erase(p);
      cannot_read(name, path, ec);
      return;
    }
    struct stat after {};
    if (::fstat(fd.get(), &after) != 0 || file_stamp::of(after) != stamp) {  // written while we read
      hint(name, file_stamp::of(after), now);
      return;
    }
    pending_.erase(p);
    unreadable_.erase(name);
    auto [known, first_sight] = known_.try_emplace(name);
    const bool same_content =
        !first_sight && known->second.hash == digest.hash && known->second.stamp.size == digest.size;
    known->second = {stamp, digest.hash, is_racy(stamp, read_start)};
    if (same_content) return;
    deliver(file_change{path, change_kind::changed, digest.hash, digest.size, mtime_of(stamp)});
  }

  /// Reports a file that cannot be read (EACCES, EIO) once, not at every
  /// scan; scans keep retrying it (an open that fails costs little), so it is
  /// read as soon as it can be, whatever its timestamps say.
  void cannot_read(const std::string& name, const std::string& path, std::error_code ec) {
    auto [u, added] = unreadable_.try_emplace(name, ec);
    if (!added && u->second == ec) return;
    u->second = ec;
    report(std::system_error(ec, "hotswap::watch::watcher: cannot read '" + path + "'"));
  }

  void forget(const std::string& name, const std::string& path) {
    unreadable_.erase(name);
    auto k = known_.find(name);
    if (k == known_.end()) return;
    const known_file last = k->second;
    known_.erase(k);
    deliver(file_change{path, change_kind::removed, last.hash, last.stamp.size, mtime_of(last.stamp)});
  }

  static std::chrono::sys_time<std::chrono::nanoseconds> mtime_of(const file_stamp& stamp) {
    return std::chrono::sys_time<std::chrono::nanoseconds>(std::chrono::nanoseconds(stamp.mtime_ns));
  }

  static std::chrono::sys_time<std::chrono::nanoseconds> wall_clock_now() {
    return std::chrono::time_point_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now());
  }

  /// `read_start`: wall-clock time taken before the content was read.
  static bool is_racy(const file_stamp& stamp, std::chrono::sys_time<std::chrono::nanoseconds> read_start) {
    return mtime_of(stamp) + racy_window >= read_start;
  }

  void deliver(const file_change& change) {
    try {
      deliver_(change);
    } catch (const std::exception& e) {
      report(e);
    } catch (...) {
      report(std::runtime_error("hotswap::watch::watcher: the callback threw a non-standard exception"));
    }
  }

  void report(const std::exception& e) {
    try {
      report_(e);
    } catch (...) {  // an error handler that throws has nowhere to report to
    }
  }

  std::string directory_;
  file_filter filter_;
  std::chrono::nanoseconds debounce_;
  deliver_fn deliver_;
  report_fn report_;
  std::unique_ptr<std::byte[]> read_buffer_;
  std::map<std::string, known_file, std::less<>> known_;     ///< last reported content per name
  std::map<std::string, pending_check, std::less<>> pending_;  ///< hinted names waiting to be quiet
  std::map<std::string, std::error_code, std::less<>> unreadable_;  ///< read failures already reported
  int last_scan_error_ = 0;
};

}  // namespace hotswap::watch::detail
