// Change detection for plugin and config files: tells the host when a file in
// one directory has a new, complete content, off every call path.
//
//   hotswap::watch::watcher plugins("/srv/plugins",
//       {.filter = hotswap::watch::name_ends_with(".so"), .debounce = std::chrono::milliseconds(100)},
//       [&](const hotswap::watch::file_change& c) {
//         if (c.kind == hotswap::watch::change_kind::changed) registry.load(c.path);  // load, check, publish
//       });
//   plugins.start();  // its own thread; the destructor stops it
//
// Three ideas, each because the obvious thing goes wrong:
//   - Watch the directory, not the file. Linkers and editors write a temporary
//     and rename it over the old name; a watch on the old file's inode would
//     see nothing (or a deletion) and never the new file.
//   - Wait until the file is quiet. A build writes in steps, an editor saves
//     in several; each would otherwise reload a half-written file. A hinted
//     file is read only after `debounce` without further change.
//   - Report content, not events. The file is hashed (XXH64) once quiet, and a
//     save with the same bytes reports nothing, so reloads follow real changes.
//
// inotify says which names to look at; where it is unavailable (a sandbox, a
// process out of inotify instances) or when asked, the watcher lists and
// stats the directory every poll_interval instead, and it rescans the same
// way when the kernel's event queue overflowed. Either way the checks and
// reports are the same (watch/detail/tracker.hpp). Ask for polling on network
// and FUSE file systems: inotify works there but hears only local writers.
//
// Driving it: start() runs it on a thread of its own, which sleeps in
// epoll_wait(2) until an event, a due check or a stop; or the host calls
// poll_once() from its own loop, waiting for readable_fd() in between. The
// callback runs on that thread; a slow callback delays later reports only.
//
// What it does not do: watch subdirectories (one watcher per directory);
// guarantee that a reported file is complete (a writer that pauses longer than
// the debounce with the file open can be read half-way: the loader's sanity
// checks refuse it, and the finished write is reported again); tell who wrote.
//
// Names: hotswap::watch, internals in hotswap::watch::detail (detail/, never
// included directly). The layer's public API is listed in <hotswap/watch.hpp>.
#pragma once

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include <hotswap/thread_name.hpp>
#include <hotswap/unique_fd.hpp>
#include "detail/hash.hpp"
#include "detail/inotify.hpp"
#include "detail/tracker.hpp"
#include "watch_options.hpp"
#include "xxh64.hpp"

namespace hotswap::watch {

/// Watches one directory and calls back with each file_change.
///
/// Threads: construct, start(), stop(), poll_once() and destroy from one
/// owning thread. rescan() is safe from any thread, the callback included;
/// sync() from any thread but the callback's (without start(): the owner's).
/// The callback may call rescan() and stop(), which then only asks.
class watcher {
 public:
  using clock = std::chrono::steady_clock;
  using callback = std::function<void(const file_change&)>;

  /// Starts watching at once (events that happen before start() are kept),
  /// and learns the directory's current files. Throws std::system_error naming
  /// the directory when it does not exist, is not a directory, cannot be
  /// listed, or (mode inotify) cannot be watched with inotify.
  watcher(std::filesystem::path directory, watch_options options, callback on_change)
      : directory_(std::move(directory)),
        options_(std::move(options)),
        on_change_(std::move(on_change)),
        tracker_(directory_.string(), options_.filter, options_.debounce,
                 [this](const file_change& c) { on_change_(c); },
                 [this](const std::exception& e) { report(e); }) {
    const std::string dir = directory_.string();
    if (!on_change_) throw std::invalid_argument("hotswap::watch::watcher: no callback for '" + dir + "'");
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) throw_system_error(errno, "cannot watch '" + dir + "'");
    if (!S_ISDIR(st.st_mode)) throw_system_error(ENOTDIR, "cannot watch '" + dir + "'");

    wake_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!wake_) throw_system_error(errno, "cannot create an eventfd for '" + dir + "'");
    ready_.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!ready_) throw_system_error(errno, "cannot create an epoll set for '" + dir + "'");
    add_to_ready_set(wake_.get());

    // The watch goes in before the first listing, so a change made while the
    // directory is read is seen by one or the other.
    watch_mode mode = watch_mode::poll;
    if (options_.mode != watch_mode::poll) {
      std::error_code ec;
      const auto failure = inotify_.open(dir.c_str(), ec);
      const bool directory_problem = failure == detail::inotify_watch::failure::watch && ec.value() != ENOSPC;
      if (failure == detail::inotify_watch::failure::none) {
        add_to_ready_set(inotify_.fd());
        mode = watch_mode::inotify;
      } else if (options_.mode == watch_mode::inotify || directory_problem) {
        throw std::system_error(ec, "hotswap::watch::watcher: cannot watch '" + dir + "' with inotify");
      } else {
        inotify_error_ = ec;  // automatic: fall back to polling
      }
    }
    mode_.store(mode, std::memory_order_relaxed);
    const auto now = clock::now();
    tracker_.start(options_.report_existing, now);
    next_scan_ = now + options_.poll_interval;
  }

  watcher(const watcher&) = delete;
  watcher& operator=(const watcher&) = delete;

  /// Stops the thread (it finishes the callback it is in, and abandons a
  /// file it is hashing). Must not run on the callback's thread.
  ~watcher() { stop(); }

  /// Runs the watcher on a thread of its own until stop() or destruction.
  void start() {
    if (thread_.joinable()) {
      if (!stop_.load(std::memory_order_relaxed)) return;  // already running
      thread_.join();  // it was stopped from its callback; start afresh
    }
    stop_.store(false, std::memory_order_relaxed);
    thread_running_.store(true, std::memory_order_relaxed);
    thread_ = std::thread([this] { run(); });
  }

  /// Stops and joins the thread; no callback runs after it returns. Called
  /// from inside the callback, it only asks the thread to end.
  void stop() noexcept {
    stop_.store(true, std::memory_order_seq_cst);  // before wake(): run() loads it after draining the wake
    wake();
    if (!thread_.joinable() || std::this_thread::get_id() == thread_.get_id()) return;
    thread_.join();
    thread_running_.store(false, std::memory_order_relaxed);
  }

  /// Drives the watcher by hand (no start()): reads what inotify queued, scans
  /// when polling is due, and reports files that became quiet. Never blocks
  /// for events. Returns when it wants to run again at the latest
  /// (time_point::max(): only once readable_fd() is readable); that may
  /// already be past, so wait with poll_timeout_ms(), which clamps it:
  ///
  ///   for (;;) {
  ///     pollfd fd{w.readable_fd(), POLLIN, 0};
  ///     ::poll(&fd, 1, hotswap::watch::watcher::poll_timeout_ms(w.poll_once()));
  ///   }
  clock::time_point poll_once() {
    if (thread_running_.load(std::memory_order_relaxed))
      throw std::logic_error("hotswap::watch::watcher: poll_once() while its own thread runs");
    if (driver_.load(std::memory_order_relaxed) == std::this_thread::get_id())
      throw std::logic_error("hotswap::watch::watcher: poll_once() from inside the callback");
    driver_.store(std::this_thread::get_id(), std::memory_order_relaxed);
    struct release_driver {
      std::atomic<std::thread::id>& driver;
      ~release_driver() { driver.store(std::thread::id{}, std::memory_order_relaxed); }
    } release{driver_};
    return step(clock::now(), nullptr);
  }

  /// The poll(2)/epoll_wait(2) timeout that ends at `due`: -1 for
  /// time_point::max(), 0 if it is past, else rounded up to whole ms (late by
  /// under 1 ms, never early: an early return would spin until `due`).
  static int poll_timeout_ms(clock::time_point due) noexcept {
    if (due == clock::time_point::max()) return -1;
    const auto left = std::max(due - clock::now(), clock::duration::zero());
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
    return static_cast<int>(std::min<std::int64_t>(ms, std::int64_t{24} * 3600 * 1000));
  }

  /// Readable when poll_once() has something to do (an inotify event, a
  /// rescan() or sync() request). Valid for the watcher's lifetime.
  int readable_fd() const noexcept { return ready_.get(); }

  /// Compares the whole directory with what was last reported, as after an
  /// inotify overflow, and reports what differs. Runs on the driving thread:
  /// at once on the watcher's own, at the next poll_once() otherwise.
  void rescan() noexcept {
    rescan_requested_.store(true, std::memory_order_relaxed);
    wake();
  }

  /// Waits until every change made before the call has been reported (or
  /// found identical), i.e. notifications read (or the directory scanned)
  /// after the call and no file left waiting for quiet. Without a thread it
  /// drives poll_once() itself. False after `timeout`, e.g. while a writer
  /// keeps changing a file. For tests and for hosts that just wrote a file.
  /// Without a thread, call it from the owning thread.
  bool sync(std::chrono::nanoseconds timeout) {
    if (std::this_thread::get_id() == driver_.load(std::memory_order_relaxed))
      throw std::logic_error("hotswap::watch::watcher: sync() from inside the callback would wait for itself");
    const auto deadline = clock::now() + std::min(timeout, std::chrono::nanoseconds(std::chrono::hours(24 * 365)));
    std::uint64_t ticket = 0;
    {
      std::lock_guard lock(sync_mutex_);
      ticket = ++sync_requested_;
    }
    wake();
    if (thread_running_.load(std::memory_order_relaxed)) {
      std::unique_lock lock(sync_mutex_);
      return sync_cv_.wait_until(lock, deadline, [&] { return sync_completed_ >= ticket; });
    }
    for (;;) {
      const auto next = poll_once();
      {
        std::lock_guard lock(sync_mutex_);
        if (sync_completed_ >= ticket) return true;
      }
      if (clock::now() >= deadline) return false;
      wait_for_ready(std::min(next, deadline));
    }
  }

  /// inotify or poll; a watcher whose directory was moved or removed under
  /// an inotify watch continues by polling its path.
  watch_mode mode() const noexcept { return mode_.load(std::memory_order_relaxed); }

  /// Why watch_mode::automatic fell back to polling (EMFILE: the process or
  /// user is out of inotify instances; ENOSPC: out of watches; ENOSYS or
  /// EPERM: a sandbox). Empty when it did not.
  std::error_code inotify_error() const noexcept { return inotify_error_; }

  const std::filesystem::path& directory() const noexcept { return directory_; }

 private:
  [[noreturn]] static void throw_system_error(int error, const std::string& what) {
    throw std::system_error(error, std::system_category(), "hotswap::watch::watcher: " + what);
  }

  void add_to_ready_set(int fd) {
    epoll_event interest{};
    interest.events = EPOLLIN;
    interest.data.fd = fd;
    if (::epoll_ctl(ready_.get(), EPOLL_CTL_ADD, fd, &interest) != 0)
      throw_system_error(errno, "cannot poll for '" + directory_.string() + "'");
  }

  void wake() noexcept {
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t written = ::write(wake_.get(), &one, sizeof one);  // EAGAIN: already awake
  }

  /// Sleeps until readable_fd() is readable or `until`, whichever is first.
  void wait_for_ready(clock::time_point until) const {
    epoll_event ready[2];
    [[maybe_unused]] const int n = ::epoll_wait(ready_.get(), ready, 2, poll_timeout_ms(until));  // EINTR: go round
  }

  void run() {
    hotswap::name_this_thread("hs-watch");
    driver_.store(std::this_thread::get_id(), std::memory_order_relaxed);
    while (!stop_.load(std::memory_order_relaxed)) {
      clock::time_point next;
      try {
        next = step(clock::now(), &stop_);
      } catch (...) {  // a throwing filter, or out of memory: report, retry later
        report_current_exception();
        rescan_requested_.store(true, std::memory_order_relaxed);  // events read may be lost
        next = clock::now() + options_.poll_interval;
      }
      // step() drained the wake counter: a stop() whose wake it took is seen here (its
      // store precedes its eventfd write, which precedes our read), not slept through.
      if (stop_.load(std::memory_order_seq_cst)) break;
      wait_for_ready(next);
    }
    driver_.store(std::thread::id{}, std::memory_order_relaxed);
  }

  /// One round of work; returns when the next round is due at the latest.
  /// Checks (and a long hash) end early once *stop turns true.
  clock::time_point step(clock::time_point now, const std::atomic<bool>* stop) {
    std::uint64_t drained;  // wake counter, discarded: the flags say why we woke
    [[maybe_unused]] const ssize_t got = ::read(wake_.get(), &drained, sizeof drained);
    std::uint64_t sync_ticket = 0;
    {
      std::lock_guard lock(sync_mutex_);
      sync_ticket = sync_requested_;
    }
    bool scan = rescan_requested_.exchange(false, std::memory_order_relaxed);

    if (inotify_) scan |= read_notifications(now);
    if (!inotify_ && (now >= next_scan_ || sync_ticket > sync_scanned_)) scan = true;
    if (scan) {
      tracker_.scan(now);
      next_scan_ = now + options_.poll_interval;
    }
    // Everything that happened before sync_ticket was requested is now either
    // read from inotify's queue or seen by the scan above.
    sync_scanned_ = sync_ticket;

    tracker_.check_due(now, stop);

    if (tracker_.idle() && sync_ticket > 0) {
      std::lock_guard lock(sync_mutex_);
      if (sync_ticket > sync_completed_) {
        sync_completed_ = sync_ticket;
        sync_cv_.notify_all();
      }
    }
    clock::time_point next = tracker_.next_due();
    if (!inotify_) next = std::min(next, next_scan_);
    return next;
  }

  /// Feeds queued inotify events to the tracker. Returns whether a full scan
  /// is needed (the queue overflowed, or the watch was lost).
  bool read_notifications(clock::time_point now) {
    bool overflowed = false;
    bool lost = false;
    std::string name;
    const std::error_code ec = inotify_.drain([&](detail::inotify_watch::event_kind kind, std::string_view n) {
      using kinds = detail::inotify_watch::event_kind;
      if (kind == kinds::overflow) {
        overflowed = true;
        return;
      }
      if (kind == kinds::watch_lost) {
        lost = true;
        return;
      }
      if (!tracker_.accepts(n)) return;
      name.assign(n);
      if (kind == kinds::created) {
        tracker_.hint_created(name, now);
      } else {
        tracker_.hint(name, now);
      }
    });
    if (ec) {
      report(std::system_error(ec, "hotswap::watch::watcher: cannot read inotify events for '" + directory_.string() +
                                       "'; polling from now on"));
      lost = true;
    } else if (lost) {
      report(std::runtime_error("hotswap::watch::watcher: '" + directory_.string() +
                                "' was moved, removed or unmounted; polling its path from now on"));
    }
    if (lost) {
      inotify_.close();  // also leaves the epoll set
      mode_.store(watch_mode::poll, std::memory_order_relaxed);
    }
    return overflowed || lost;
  }

  void report(const std::exception& e) const noexcept {
    try {
      if (options_.on_error) {
        options_.on_error(e);
      } else {
        std::fprintf(stderr, "%s\n", e.what());
      }
    } catch (...) {  // an error handler that throws has nowhere to report to
    }
  }

  void report_current_exception() const noexcept {
    try {
      throw;
    } catch (const std::exception& e) {
      report(e);
    } catch (...) {
      report(std::runtime_error("hotswap::watch::watcher: a non-standard exception on the watcher thread"));
    }
  }

  std::filesystem::path directory_;
  watch_options options_;
  callback on_change_;
  detail::change_tracker tracker_;  // driver-thread state from here down to next_scan_
  detail::inotify_watch inotify_;
  hotswap::unique_fd wake_;   ///< eventfd: stop(), rescan() and sync() requests
  hotswap::unique_fd ready_;  ///< epoll set of wake_ and inotify_: what the driver sleeps on
  clock::time_point next_scan_{};
  std::uint64_t sync_scanned_ = 0;
  std::error_code inotify_error_;
  std::atomic<watch_mode> mode_{watch_mode::poll};

  // Flags only: none of them publishes other data, so all are relaxed. What
  // they ask for is ordered by the eventfd write that follows each store and
  // the read that precedes each load (syscalls), and sync's result by sync_mutex_.
  std::atomic<bool> stop_{false};
  std::atomic<bool> rescan_requested_{false};
  std::atomic<bool> thread_running_{false};
  std::atomic<std::thread::id> driver_{};

  std::mutex sync_mutex_;
  std::condition_variable sync_cv_;
  std::uint64_t sync_requested_ = 0;  // guarded by sync_mutex_
  std::uint64_t sync_completed_ = 0;  // guarded by sync_mutex_

  std::thread thread_;  // last: started after, and joined before, everything above is torn down
};

}  // namespace hotswap::watch
