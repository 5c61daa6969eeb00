// hotswap::watch::watcher over real files, each test in a fresh mkdtemp directory.
//
// Every behaviour runs four ways: inotify or polling, on the watcher's own
// thread or driven by hand through poll_once(). Nothing sleeps and hopes: a
// test waits for a condition with a bounded timeout, and "reported exactly
// once" is checked after sync(), which returns only when every change made
// before it has been reported or found identical. The debounce window itself
// is tested on change_tracker with synthetic time (change_tracker_test).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <ostream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <hotswap/watch.hpp>

namespace {

using hotswap::watch::xxh64;

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using hotswap::watch::change_kind;
using hotswap::watch::file_change;
using hotswap::watch::watch_mode;
using hotswap::watch::watch_options;
using hotswap::watch::watcher;

constexpr auto bounded_wait = 5s;  // every wait in this file ends by then

/// A fresh directory under $TMPDIR (or /tmp), removed with its contents.
class temp_dir {
 public:
  temp_dir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/hotswap-watch-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw std::system_error(errno, std::system_category(), "mkdtemp");
    path_ = pattern;
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

/// open(O_TRUNC), one write, close: one IN_CLOSE_WRITE.
void write_file(const fs::path& path, const std::string& content, int flags = O_TRUNC) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0644);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
  ASSERT_EQ(::close(fd), 0);
}

/// The editor's and linker's save: write a temporary, rename it over the name.
void replace_file(const fs::path& path, const std::string& content) {
  const fs::path temporary = path.string() + ".tmp";
  write_file(temporary, content);
  fs::rename(temporary, path);
}

/// Collects reports and errors; wakes whoever waits for them.
class recorder {
 public:
  watcher::callback on_change() {
    return [this](const file_change& c) {
      std::lock_guard lock(mutex_);
      changes_.push_back(c);
      cv_.notify_all();
    };
  }
  std::function<void(const std::exception&)> on_error() {
    return [this](const std::exception& e) {
      std::lock_guard lock(mutex_);
      errors_.emplace_back(e.what());
      cv_.notify_all();
    };
  }
  /// `condition` runs under the recorder's lock (use the *_locked counts).
  bool wait(const std::function<bool()>& condition, std::chrono::nanoseconds timeout) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, condition);
  }
  bool holds(const std::function<bool()>& condition) const {
    std::lock_guard lock(mutex_);
    return condition();
  }
  std::vector<file_change> changes() const {
    std::lock_guard lock(mutex_);
    return changes_;
  }
  std::vector<std::string> errors() const {
    std::lock_guard lock(mutex_);
    return errors_;
  }
  // For conditions evaluated under the lock (inside wait()).
  std::size_t change_count_locked() const { return changes_.size(); }
  std::size_t error_count_locked() const { return errors_.size(); }

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<file_change> changes_;
  std::vector<std::string> errors_;
};

/// One way to run a watcher.
struct drive {
  watch_mode mode;
  bool own_thread;
  const char* name;
};
void PrintTo(const drive& d, std::ostream* os) { *os << d.name; }

class watch_test : public ::testing::TestWithParam<drive> {
 protected:
  temp_dir dir;
  recorder seen;
  std::unique_ptr<watcher> w;

  /// Builds the watcher for this test's mode, with short windows.
  void watch(watch_options options = {}) {
    options.mode = GetParam().mode;
    if (options.debounce == watch_options{}.debounce) options.debounce = 20ms;
    options.poll_interval = 10ms;
    options.on_error = seen.on_error();
    w = std::make_unique<watcher>(dir.path(), std::move(options), seen.on_change());
    EXPECT_EQ(w->mode(), GetParam().mode);
    if (GetParam().own_thread) w->start();
  }

  /// Waits (bounded) until `condition` (run under the recorder's lock) holds.
  /// By hand, this is the loop a host without a watcher thread writes.
  bool wait_until(const std::function<bool()>& condition) {
    if (GetParam().own_thread) return seen.wait(condition, bounded_wait);
    const auto deadline = watcher::clock::now() + bounded_wait;
    for (;;) {
      const auto due = w->poll_once();
      if (seen.holds(condition)) return true;
      if (watcher::clock::now() >= deadline) return false;
      pollfd ready{w->readable_fd(), POLLIN, 0};
      ::poll(&ready, 1, watcher::poll_timeout_ms(std::min(due, deadline)));
    }
  }

  bool wait_for_changes(std::size_t n) {
    return wait_until([&] { return seen.change_count_locked() >= n; });
  }

  /// Every change made so far has been handled; then exactly `expected`.
  std::vector<file_change> settled(std::size_t expected) {
    EXPECT_TRUE(w->sync(bounded_wait)) << "sync timed out";
    auto changes = seen.changes();
    EXPECT_EQ(changes.size(), expected) << describe(changes);
    return changes;
  }

  static std::string describe(const std::vector<file_change>& changes) {
    std::string text = "reported:";
    for (const auto& c : changes)
      text += "\n  " + c.path.string() + (c.kind == change_kind::changed ? " changed" : " removed");
    return text;
  }
};

std::chrono::sys_time<std::chrono::nanoseconds> mtime_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0);
  return std::chrono::sys_time<std::chrono::nanoseconds>(std::chrono::seconds(st.st_mtim.tv_sec) +
                                                         std::chrono::nanoseconds(st.st_mtim.tv_nsec));
}

TEST_P(watch_test, write_then_close_reports_once_with_hash_size_and_mtime) {
  watch();
  write_file(dir / "app.toml", "port = 8080\n");
  ASSERT_TRUE(wait_for_changes(1));
  const auto changes = settled(1);
  ASSERT_EQ(changes.size(), 1U);
  EXPECT_EQ(changes[0].path, dir / "app.toml");
  EXPECT_EQ(changes[0].kind, change_kind::changed);
  EXPECT_EQ(changes[0].hash, xxh64::of("port = 8080\n"));
  EXPECT_EQ(changes[0].size, 12U);
  EXPECT_EQ(changes[0].mtime, mtime_of(dir / "app.toml"));
}

TEST_P(watch_test, rename_into_place_reports_the_target_once_per_save) {
  watch({.filter = hotswap::watch::name_equals("app.toml")});
  replace_file(dir / "app.toml", "v = 1\n");
  ASSERT_TRUE(wait_for_changes(1));
  replace_file(dir / "app.toml", "v = 2\n");  // over an existing file this time
  ASSERT_TRUE(wait_for_changes(2));
  const auto changes = settled(2);
  ASSERT_EQ(changes.size(), 2U);
  EXPECT_EQ(changes[0].path, dir / "app.toml");
  EXPECT_EQ(changes[0].hash, xxh64::of("v = 1\n"));
  EXPECT_EQ(changes[1].path, dir / "app.toml");
  EXPECT_EQ(changes[1].hash, xxh64::of("v = 2\n"));
}

TEST_P(watch_test, saving_identical_content_reports_nothing) {
  write_file(dir / "app.toml", "same\n");
  watch();
  write_file(dir / "app.toml", "same\n");    // in place
  replace_file(dir / "app.toml", "same\n");  // by rename: new inode, same bytes
  settled(0);
  write_file(dir / "app.toml", "different\n");
  ASSERT_TRUE(wait_for_changes(1));
  EXPECT_EQ(settled(1).at(0).hash, xxh64::of("different\n"));
}

TEST_P(watch_test, names_outside_the_filter_are_not_reported) {
  watch({.filter = hotswap::watch::name_ends_with(".so")});
  write_file(dir / "notes.txt", "x");
  write_file(dir / "libplugin.so.partial", "x");
  settled(0);
  write_file(dir / "libplugin.so", "elf");
  ASSERT_TRUE(wait_for_changes(1));
  EXPECT_EQ(settled(1).at(0).path, dir / "libplugin.so");
}

TEST_P(watch_test, delete_and_rename_away_report_removed_with_the_last_content) {
  write_file(dir / "a.toml", "alpha");
  write_file(dir / "b.toml", "beta!");
  watch();
  fs::remove(dir / "a.toml");
  fs::rename(dir / "b.toml", dir / "b.toml.bak");
  ASSERT_TRUE(wait_for_changes(3));  // a removed, b removed, b.toml.bak new
  auto changes = settled(3);
  std::sort(changes.begin(), changes.end(), [](const auto& x, const auto& y) { return x.path < y.path; });
  ASSERT_EQ(changes.size(), 3U);
  EXPECT_EQ(changes[0].path, dir / "a.toml");
  EXPECT_EQ(changes[0].kind, change_kind::removed);
  EXPECT_EQ(changes[0].hash, xxh64::of("alpha"));
  EXPECT_EQ(changes[0].size, 5U);
  EXPECT_EQ(changes[1].path, dir / "b.toml");
  EXPECT_EQ(changes[1].kind, change_kind::removed);
  EXPECT_EQ(changes[1].hash, xxh64::of("beta!"));
  EXPECT_EQ(changes[2].path, dir / "b.toml.bak");
  EXPECT_EQ(changes[2].kind, change_kind::changed);
}

TEST_P(watch_test, a_symlink_or_hard_link_appearing_is_reported_with_its_content) {
  temp_dir elsewhere;
  write_file(elsewhere / "v1.so", "one");
  write_file(elsewhere / "v2.so", "two");
  watch();
  fs::create_symlink(elsewhere / "v1.so", dir / "current.so");
  fs::create_hard_link(elsewhere / "v2.so", dir / "linked.so");
  ASSERT_TRUE(wait_for_changes(2));
  auto changes = settled(2);
  std::sort(changes.begin(), changes.end(), [](const auto& x, const auto& y) { return x.path < y.path; });
  EXPECT_EQ(changes.at(0).path, dir / "current.so");
  EXPECT_EQ(changes.at(0).hash, xxh64::of("one"));
  EXPECT_EQ(changes.at(1).path, dir / "linked.so");
  EXPECT_EQ(changes.at(1).hash, xxh64::of("two"));
}

TEST_P(watch_test, rescan_reports_what_notifications_missed) {
  // A write through a hard link in another directory raises no event in the
  // watched one: the same blindness as an overflowed inotify queue.
  temp_dir elsewhere;
  write_file(dir / "app.toml", "before");
  fs::create_hard_link(dir / "app.toml", elsewhere / "alias.toml");
  watch();
  write_file(elsewhere / "alias.toml", "after!");
  if (GetParam().mode == watch_mode::inotify) settled(0);  // inotify did miss it
  w->rescan();
  ASSERT_TRUE(wait_for_changes(1));
  const auto changes = settled(1);
  EXPECT_EQ(changes.at(0).path, dir / "app.toml");
  EXPECT_EQ(changes.at(0).hash, xxh64::of("after!"));
}

TEST_P(watch_test, existing_files_are_reported_when_asked) {
  write_file(dir / "a.toml", "a");
  write_file(dir / "b.toml", "b");
  watch({.report_existing = true});
  ASSERT_TRUE(wait_for_changes(2));
  settled(2);
}

TEST_P(watch_test, a_throwing_callback_is_reported_and_the_watcher_goes_on) {
  watch_options options;
  options.mode = GetParam().mode;
  options.debounce = 20ms;
  options.poll_interval = 10ms;
  options.on_error = seen.on_error();
  // By value: the watcher (a member) outlives this body's locals.
  w = std::make_unique<watcher>(dir.path(), options, [record = seen.on_change()](const file_change& c) {
    record(c);
    if (c.path.filename() == "bad.toml") throw std::runtime_error("callback failed on purpose");
  });
  if (GetParam().own_thread) w->start();
  write_file(dir / "bad.toml", "x");
  ASSERT_TRUE(wait_for_changes(1));
  write_file(dir / "good.toml", "y");
  ASSERT_TRUE(wait_for_changes(2));
  settled(2);
  const auto errors = seen.errors();
  ASSERT_EQ(errors.size(), 1U);
  EXPECT_EQ(errors[0], "callback failed on purpose");
}

TEST_P(watch_test, a_throwing_filter_is_reported_and_rejects_only_that_name) {
  watch({.filter = [](std::string_view name) {
    if (name == "boom.toml") throw std::runtime_error("filter failed on purpose");
    return true;
  }});
  write_file(dir / "boom.toml", "x");
  write_file(dir / "fine.toml", "y");
  ASSERT_TRUE(wait_until([&] { return seen.change_count_locked() >= 1 && seen.error_count_locked() >= 1; }));
  EXPECT_EQ(settled(1).at(0).path, dir / "fine.toml");
  EXPECT_EQ(seen.errors().at(0), "filter failed on purpose");
}

TEST_P(watch_test, a_fifo_under_a_watched_name_neither_blocks_nor_reports) {
  watch();
  ASSERT_EQ(::mkfifo((dir / "app.toml").c_str(), 0600), 0);
  write_file(dir / "other.toml", "x");
  ASSERT_TRUE(wait_for_changes(1));
  EXPECT_EQ(settled(1).at(0).path, dir / "other.toml");
}

TEST_P(watch_test, the_directory_going_away_reports_removed_and_polling_goes_on) {
  write_file(dir / "app.toml", "x");
  watch();
  fs::remove_all(dir.path());
  ASSERT_TRUE(wait_until([&] { return seen.change_count_locked() >= 1 && seen.error_count_locked() >= 1; }));
  EXPECT_EQ(seen.changes().at(0).kind, change_kind::removed);
  EXPECT_EQ(w->mode(), watch_mode::poll);  // an inotify watch cannot follow a new directory
  fs::create_directory(dir.path());
  write_file(dir / "app.toml", "back");
  ASSERT_TRUE(wait_for_changes(2));
  EXPECT_EQ(settled(2).at(1).hash, xxh64::of("back"));
}

INSTANTIATE_TEST_SUITE_P(modes, watch_test,
                         ::testing::Values(drive{watch_mode::inotify, true, "inotify_thread"},
                                           drive{watch_mode::inotify, false, "inotify_by_hand"},
                                           drive{watch_mode::poll, true, "poll_thread"},
                                           drive{watch_mode::poll, false, "poll_by_hand"}),
                         [](const ::testing::TestParamInfo<drive>& info) { return std::string(info.param.name); });

// ---------------------------------------------------------------------------
// The debounce, on change_tracker with synthetic time: the test says when each
// hint and each check happens (the instants the watcher's thread would pass),
// so no test sleeps or depends on being scheduled in time. The files are real.

class change_tracker_test : public ::testing::Test {
 protected:
  using tracker = hotswap::watch::detail::change_tracker;
  static constexpr std::chrono::milliseconds window{100};

  temp_dir dir;
  std::vector<file_change> changes;
  tracker t{dir.path().string(), {}, window, [this](const file_change& c) { changes.push_back(c); },
            [](const std::exception& e) { ADD_FAILURE() << e.what(); }};
  const tracker::clock::time_point t0 = tracker::clock::now();

  /// Checks at t0 + `at`: the watcher's thread waking then.
  void check_at(std::chrono::nanoseconds at) { t.check_due(t0 + at, nullptr); }
};

TEST_F(change_tracker_test, steps_within_the_window_are_read_once_after_the_last) {
  // A build writing one file in steps (open, append, close), 10 ms apart:
  // each close-write hints the name and restarts the window.
  t.start(false, t0);
  std::string all;
  for (int step = 0; step < 5; ++step) {
    const std::string piece = "chunk " + std::to_string(step) + "\n";
    write_file(dir / "lib.so", piece, step == 0 ? O_TRUNC : O_APPEND);
    all += piece;
    t.hint("lib.so", t0 + step * 10ms);
    check_at(step * 10ms + 5ms);
    EXPECT_TRUE(changes.empty()) << "read at step " << step;
  }
  EXPECT_EQ(t.next_due(), t0 + 40ms + window);
  check_at(40ms + window - 1ns);
  EXPECT_TRUE(changes.empty()) << "read before the window after the last step ended";
  check_at(40ms + window);
  ASSERT_EQ(changes.size(), 1U);
  EXPECT_EQ(changes[0].kind, change_kind::changed);
  EXPECT_EQ(changes[0].hash, xxh64::of(all));
  EXPECT_EQ(changes[0].size, all.size());
  EXPECT_TRUE(t.idle());
}

TEST_F(change_tracker_test, a_file_changed_after_its_last_hint_waits_for_another_window) {
  // The window ends, but the file's stat no longer matches the one taken at
  // the hint (a writer whose events are still queued): not quiet yet.
  write_file(dir / "app.toml", "a = 1\n");
  t.start(false, t0);
  write_file(dir / "app.toml", "a = 2\n", O_APPEND);
  t.hint("app.toml", t0);
  write_file(dir / "app.toml", "a = 3\n", O_APPEND);  // no hint for this one yet
  check_at(window);
  EXPECT_TRUE(changes.empty()) << "read a file that changed after its hint";
  EXPECT_EQ(t.next_due(), t0 + 2 * window);
  check_at(2 * window);
  ASSERT_EQ(changes.size(), 1U);
  EXPECT_EQ(changes[0].hash, xxh64::of("a = 1\na = 2\na = 3\n"));
}

TEST_F(change_tracker_test, remove_then_recreate_within_the_window_is_one_change) {
  // vim's default save: rename the original away, write a new file, remove
  // the backup; the events hint each name as it happens.
  write_file(dir / "app.toml", "old");
  t.start(false, t0);
  fs::rename(dir / "app.toml", dir / "app.toml~");
  t.hint("app.toml", t0);
  t.hint("app.toml~", t0);
  write_file(dir / "app.toml", "new");
  t.hint("app.toml", t0 + 1ms);
  fs::remove(dir / "app.toml~");
  t.hint("app.toml~", t0 + 2ms);
  check_at(window);  // app.toml's window (from its last hint) has 1 ms to go
  EXPECT_TRUE(changes.empty());
  check_at(2ms + window);
  ASSERT_EQ(changes.size(), 1U);
  EXPECT_EQ(changes[0].path, dir / "app.toml");
  EXPECT_EQ(changes[0].kind, change_kind::changed);
  EXPECT_EQ(changes[0].hash, xxh64::of("new"));
}

TEST_F(change_tracker_test, a_file_written_slowly_is_read_once_complete) {
  // `install`'s pattern: unlink, create, then write for longer than the
  // window (100 lines, 4 ms apart: 400 ms against 100 ms). Every write
  // hints the name; the old content is never reported removed.
  write_file(dir / "lib.so", "old");
  t.start(false, t0);
  fs::remove(dir / "lib.so");
  t.hint("lib.so", t0);
  const int fd = ::open((dir / "lib.so").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  std::string all;
  for (int i = 0; i < 100; ++i) {
    const std::string line = "line " + std::to_string(i) + "\n";
    ASSERT_EQ(::write(fd, line.data(), line.size()), static_cast<ssize_t>(line.size()));
    all += line;
    t.hint("lib.so", t0 + (i + 1) * 4ms);
    check_at((i + 1) * 4ms + 3ms);
    ASSERT_TRUE(changes.empty()) << "read after " << i + 1 << " lines";
  }
  ASSERT_EQ(::close(fd), 0);
  t.hint("lib.so", t0 + 401ms);  // the close-write
  check_at(401ms + window);
  ASSERT_EQ(changes.size(), 1U) << "reported removed, or more than once";
  EXPECT_EQ(changes[0].kind, change_kind::changed);
  EXPECT_EQ(changes[0].hash, xxh64::of(all));
}

// ---------------------------------------------------------------------------
// Construction errors, shutdown, inotify's own failure modes.

class watch_mode_test : public ::testing::TestWithParam<watch_mode> {};

TEST_P(watch_mode_test, a_missing_directory_is_a_clear_error) {
  temp_dir dir;
  const fs::path missing = dir / "no-such-dir";
  try {
    watcher w(missing, {.mode = GetParam()}, [](const file_change&) {});
    FAIL() << "constructed a watcher on a missing directory";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
    EXPECT_NE(std::string(e.what()).find(missing.string()), std::string::npos) << e.what();
  }
}

TEST_P(watch_mode_test, a_file_is_not_a_directory) {
  temp_dir dir;
  write_file(dir / "app.toml", "x");
  try {
    watcher w(dir / "app.toml", {.mode = GetParam()}, [](const file_change&) {});
    FAIL() << "constructed a watcher on a file";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::not_a_directory);
    EXPECT_NE(std::string(e.what()).find("app.toml"), std::string::npos) << e.what();
  }
}

TEST_P(watch_mode_test, the_destructor_stops_the_thread_promptly) {
  temp_dir dir;
  auto started = watcher::clock::now();
  {
    // Hour-long windows: only the wake-up can end the thread's sleep.
    watcher w(dir.path(), {.debounce = 1h, .mode = GetParam(), .poll_interval = 1h}, [](const file_change&) {});
    w.start();
    write_file(dir / "pending.toml", "x");  // a check waits an hour for quiet
    EXPECT_FALSE(w.sync(0ns));              // not idle: the check is pending
    started = watcher::clock::now();
  }
  EXPECT_LT(watcher::clock::now() - started, 1s);
}

TEST_P(watch_mode_test, stop_from_inside_the_callback_ends_the_thread) {
  temp_dir dir;
  std::mutex m;
  std::condition_variable cv;
  int calls = 0;
  watcher* self = nullptr;
  watcher w(dir.path(), {.debounce = 1ms, .mode = GetParam(), .poll_interval = 5ms}, [&](const file_change&) {
    self->stop();  // only asks; the destructor joins
    std::lock_guard lock(m);
    ++calls;
    cv.notify_all();
  });
  self = &w;
  w.start();
  write_file(dir / "a.toml", "x");
  std::unique_lock lock(m);
  EXPECT_TRUE(cv.wait_for(lock, bounded_wait, [&] { return calls == 1; }));
}

INSTANTIATE_TEST_SUITE_P(modes, watch_mode_test, ::testing::Values(watch_mode::inotify, watch_mode::poll),
                         [](const ::testing::TestParamInfo<watch_mode>& info) {
                           return std::string(info.param == watch_mode::inotify ? "inotify" : "poll");
                         });

TEST(watch_host_loop, poll_timeout_never_spins_and_never_blocks_past_due) {
  const auto now = watcher::clock::now();
  EXPECT_EQ(watcher::poll_timeout_ms(watcher::clock::time_point::max()), -1);  // only on readable_fd()
  EXPECT_EQ(watcher::poll_timeout_ms(now - 1s), 0);                           // overdue: at once
  EXPECT_EQ(watcher::poll_timeout_ms(now + 10h), 10 * 3600 * 1000);
  const int soon = watcher::poll_timeout_ms(watcher::clock::now() + 1500us);  // rounded up, not down to 1
  EXPECT_GE(soon, 1);
  EXPECT_LE(soon, 2);
}

// A stop() whose wake the thread drained while it worked (between its check
// of the stop flag and its sleep) must still end the thread: with inotify and
// nothing due, the sleep has no timeout. hotswap-httpd hung at SIGTERM on it.
TEST(watch_inotify, a_stop_while_the_thread_works_is_never_slept_through) {
  temp_dir dir;
  recorder seen;
  for (int i = 0; i < 500; ++i) {
    watcher w(dir.path(), {.mode = watch_mode::inotify}, seen.on_change());
    w.start();
    w.rescan();  // keeps the thread going round its loop while stop() lands
    auto stopped = std::async(std::launch::async, [&] { w.stop(); });
    if (stopped.wait_for(5s) != std::future_status::ready) {
      w.rescan();  // wakes the sleeping thread, so the test can end
      stopped.wait();
      FAIL() << "round " << i << ": stop() waited for a thread asleep with no wake left";
    }
  }
}

TEST(watch_inotify, a_real_queue_overflow_is_repaired_by_a_rescan) {
  int max_queued = 0;
  std::ifstream("/proc/sys/fs/inotify/max_queued_events") >> max_queued;
  if (max_queued <= 0 || max_queued > 1 << 20) GTEST_SKIP() << "max_queued_events = " << max_queued;

  temp_dir dir;
  write_file(dir / "app.toml", "before");
  write_file(dir / "noise-a", "");
  write_file(dir / "noise-b", "");
  recorder seen;
  // Driven by hand: nothing reads the queue while it is being overfilled.
  watcher w(dir.path(), {.filter = hotswap::watch::name_equals("app.toml"), .debounce = 1ms, .mode = watch_mode::inotify},
            seen.on_change());
  // Alternate names so the kernel cannot merge consecutive identical events.
  for (int i = 0; i <= max_queued; ++i) {
    const int fd = ::open((dir / (i % 2 == 0 ? "noise-a" : "noise-b")).c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ::close(fd);
  }
  write_file(dir / "app.toml", "after!");  // its event is lost to the overflow
  ASSERT_TRUE(w.sync(bounded_wait));
  const auto changes = seen.changes();
  ASSERT_EQ(changes.size(), 1U);
  EXPECT_EQ(changes[0].path, dir / "app.toml");
  EXPECT_EQ(changes[0].hash, xxh64::of("after!"));
}

/// Runs in a child process that drops root (root reads any file). Exit codes
/// say which expectation failed.
[[noreturn]] void report_an_unreadable_file_once() {
  if (::geteuid() == 0 && ::setuid(65534) != 0) std::_Exit(77);  // nobody
  int code = 0;
  {
    temp_dir dir;
    write_file(dir / "secret.toml", "x");
    ::chmod((dir / "secret.toml").c_str(), 0);
    recorder seen;
    watcher w(dir.path(), {.debounce = 1ms, .mode = watch_mode::poll, .on_error = seen.on_error()}, seen.on_change());
    for (int scan = 0; scan < 5; ++scan)
      if (!w.sync(bounded_wait)) code = 1;
    if (seen.errors().size() != 1 || !seen.changes().empty()) code = 2;
    ::chmod((dir / "secret.toml").c_str(), 0644);  // a new ctime: read again
    if (!w.sync(bounded_wait) || seen.changes().size() != 1 || seen.errors().size() != 1) code = 3;
  }
  std::_Exit(code);
}

TEST(watch_poll, an_unreadable_file_is_reported_once_not_every_scan) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // Exit 77: could not drop root here, so there is nothing to test.
  EXPECT_EXIT(report_an_unreadable_file_once(),
              [](int status) { return WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 77); },
              "")
      << "exit 1: sync timed out; 2: not exactly one error before chmod; 3: not read after chmod";
}

#if defined(__x86_64__)
/// Makes inotify_init1 (and inotify_init) fail with ENOSYS in this process,
/// as some sandboxes do. False if seccomp filters are not allowed here.
bool deny_inotify_like_a_sandbox() {
  sock_filter program[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_inotify_init1, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_inotify_init, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
  };
  sock_fprog filter{static_cast<unsigned short>(sizeof program / sizeof program[0]), program};
  return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &filter) == 0;
}

/// Runs in a child process (the filter cannot be removed). Exit codes say
/// which expectation failed.
[[noreturn]] void fall_back_to_polling_without_inotify() {
  if (!deny_inotify_like_a_sandbox()) std::_Exit(77);
  int code = 0;
  {
    temp_dir dir;
    try {
      watcher strict(dir.path(), {.mode = watch_mode::inotify}, [](const file_change&) {});
      code = 1;  // mode inotify must refuse
    } catch (const std::system_error& e) {
      if (e.code() != std::errc::function_not_supported) code = 2;
    }
    recorder seen;
    watcher w(dir.path(), {.debounce = 1ms, .poll_interval = 5ms}, seen.on_change());
    if (w.mode() != watch_mode::poll) code = 3;
    if (w.inotify_error() != std::errc::function_not_supported) code = 4;
    w.start();
    write_file(dir / "app.toml", "x");
    if (!w.sync(bounded_wait) || seen.changes().size() != 1) code = 5;
  }
  std::_Exit(code);
}

TEST(watch_inotify, automatic_mode_falls_back_to_polling_where_inotify_is_denied) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // Exit 77: this machine allows no seccomp filter, so there is nothing to test.
  EXPECT_EXIT(fall_back_to_polling_without_inotify(),
              [](int status) { return WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 77); },
              "")
      << "exit 1: mode inotify did not throw; 2: wrong error; 3, 4: no fallback; 5: no report";
}
#endif

}  // namespace
