// A configuration file served to readers through a slot, edited while the
// program runs, by hand or through this API, with history and write-back.
//
//   hotswap::domain dom;
//   hotswap::config::store cfg(dom, "/etc/app/app.toml", make_schema());
//   cfg.subscribe([](const snapshot& now, const std::vector<change>& changes) { ... });
//   cfg.start();                                    // watch the directory
//   auto c = cfg.read();                            // lock-free: one slot read
//   use(c->integer("limits.max_connections"));      // every key from one version
//
// A save of the file by an editor (by rename or in place) runs the sequence of
// the original web-server metabase: the directory watcher waits until the file
// is quiet and its content really changed; the store reads the history major
// version the file records (history_major_key), finds the newest history file
// of that major, parses and validates the file, diffs it against that history
// file (no change: nothing happens), checks every changed key against the
// schema, applies the changes to the serving snapshot, publishes the result,
// and writes history NAME.<major>.<minor+1>.toml. A file that fails is kept as
// NAME.error.<n>.toml with its error logged, and the serving snapshot keeps
// serving. An edit based on an older major (the store was written to disk
// since the editor opened the file) is refused instead of undoing newer changes.
//
// update() changes the in-memory snapshot with compare-and-publish on the
// slot version: a writer holding a stale version gets a conflict. Such changes
// are pending until write_to_disk(), which takes a new major version (see
// write_step for its sequence).
//
// Threads: read(), call(), pin() and version() from any thread, lock-free.
// Writers (saves on the watcher thread, update(), write_to_disk(), reload())
// serialise on one mutex; subscribers run on the writer's thread, in version
// order, after the publish, and must not call update(), write_to_disk() or
// reload() themselves (that throws std::logic_error).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <hotswap/domain.hpp>
#include <hotswap/slot.hpp>
#include <hotswap/watch.hpp>

#include "diff.hpp"
#include "error.hpp"
#include "history.hpp"
#include "loader.hpp"
#include "schema.hpp"
#include "value.hpp"

namespace hotswap::config {

enum class log_level { info, warning, error };

/// The steps of write_to_disk(), in order; store_options::on_write_step is
/// called after each (the crash tests kill the process there).
enum class write_step {
  temp_written,     ///< NAME.toml.tmp written and fsync'ed
  history_written,  ///< copied durably to NAME.<new major>.0.toml
  checks_passed,    ///< main file not locked, not read-only, not newer than the temp
  replaced,         ///< temp renamed over the main file, directory fsync'ed
  pruned,           ///< oldest history beyond history_keep deleted
};

struct save_report;

struct store_options {
  /// History files kept; the oldest beyond it are deleted after each history
  /// write. Raise it to roll back further.
  std::size_t history_keep = 32;
  /// Error copies kept (NAME.error.<n>.toml and .txt).
  std::size_t error_keep = 16;
  /// Passed to the watcher: a save must be quiet this long before it is read.
  std::chrono::nanoseconds debounce = std::chrono::milliseconds(20);
  /// inotify, or polling for network file systems (watch_mode::poll).
  watch::watch_mode watch = watch::watch_mode::automatic;
  load_limits limits{};
  slot_options slot{};
  /// Where the store reports: accepted saves (info), refused ones (error).
  /// Default: one line on stderr for warnings and errors.
  std::function<void(log_level, const std::string&)> log;
  /// After every save the store handled (applied, unchanged or refused).
  std::function<void(const save_report&)> on_save;
  /// After each step of write_to_disk(); for crash tests.
  std::function<void(write_step)> on_write_step;
};

/// What happened to one save of the main file.
struct save_report {
  enum class outcome {
    applied,    ///< published, history written
    unchanged,  ///< same values as its base history file: nothing done
    rejected,   ///< invalid, or based on a stale version: error copy kept
  };
  outcome result = outcome::unchanged;
  std::optional<config_error> error;        ///< when rejected
  std::filesystem::path error_copy;         ///< when rejected
  std::optional<history_entry> history;     ///< the history file written, when applied
  std::vector<change> changes;              ///< applied changes
  std::uint64_t version = 0;                ///< slot version serving afterwards
};

/// One API edit: set `key` to `value`, or remove it (nullopt: back to its default).
struct edit {
  std::string key;
  std::optional<value> new_value;
};

struct update_result {
  enum class status { published, unchanged, conflict, invalid, backpressure };
  status result = status::published;
  std::uint64_t version = 0;          ///< new version, or the serving one
  std::optional<config_error> error;  ///< when invalid
  std::vector<change> changes;
  explicit operator bool() const noexcept { return result == status::published || result == status::unchanged; }
};

struct write_result {
  enum class status {
    written,
    nothing_pending,  ///< no API change since the last write
    locked,           ///< another editor holds an advisory lock on the main file
    read_only,        ///< the main file has no write permission bits
    main_newer,       ///< the main file was modified after the temp was written
    io_error,
  };
  status result = status::written;
  std::uint64_t major = 0;          ///< the major version taken
  std::filesystem::path kept_temp;  ///< when a check refused: the temp, kept
  std::string message;
  explicit operator bool() const noexcept { return result == status::written; }
};

class store {
 public:
  using snapshot_slot = hotswap::slot<snapshot>;
  using subscriber = std::function<void(const snapshot& now, const std::vector<change>& changes)>;

  /// Loads the main file. If it is missing or invalid, the newest valid
  /// history file serves instead (logged); with neither, throws
  /// config_exception with the main file's error. Does not watch until start().
  store(hotswap::domain& dom, std::filesystem::path main_file, schema rules, store_options options = {});
  ~store();
  store(const store&) = delete;
  store& operator=(const store&) = delete;

  /// Watches the directory on a thread of the watcher's own.
  void start();
  void stop();
  /// Waits until every save made before the call has been handled (false on
  /// timeout); for tests and for programs that just wrote the file.
  bool sync(std::chrono::nanoseconds timeout);
  /// Runs the save sequence on the main file now.
  save_report reload();

  // ---- readers: lock-free ----------------------------------------------
  snapshot_slot::read_ptr read() const { return slot_->read(); }
  snapshot_slot::read_ptr read(snapshot_slot::reader& r) const { return slot_->read(r); }
  template <class F>
  decltype(auto) call(F&& f) const {
    return slot_->call(std::forward<F>(f));
  }
  hotswap::pin<snapshot, hotswap::domain> pin() const { return slot_->pin(); }
  std::uint64_t version() const { return slot_->current_version(); }
  const snapshot_slot& slot() const noexcept { return *slot_; }

  // ---- subscribers ------------------------------------------------------
  /// Called after each publish with the changes. Returns an id for
  /// unsubscribe(). With `replay_current`, also called once at once with the
  /// serving snapshot (and no changes), under the same lock as every later
  /// call, so a subscriber that mirrors the snapshot misses nothing.
  std::uint64_t subscribe(subscriber fn, bool replay_current = false);
  void unsubscribe(std::uint64_t id);

  // ---- writers ----------------------------------------------------------
  /// Applies `edits` to version `expected` (compare-and-publish): conflict if
  /// another version is serving by then. Validated like a file.
  update_result update(std::uint64_t expected, const std::vector<edit>& edits);
  /// Writes the in-memory snapshot to the main file as a new major version.
  write_result write_to_disk();
  /// Whether update() changes are not on disk yet.
  bool pending() const;
  /// The history version the serving snapshot is based on.
  history_entry serving_history() const;

  const schema& rules() const noexcept { return rules_; }
  const history_dir& files() const noexcept { return files_; }

 private:
  save_report handle_save();  // save_sequence() and on_save; writer_mutex_ held
  save_report save_sequence();
  /// Refuses a save: `kept` (the text, an over-size file's head, or nothing
  /// for a file not read) becomes the error copy; `note` says what was left out.
  save_report reject(std::string_view kept, config_error error, std::string_view note = {});
  publish_result publish(std::uint64_t expected, snapshot&& next, const std::string& label);
  void notify(const snapshot& now, const std::vector<change>& changes);
  void log(log_level level, const std::string& message) const;
  void check_not_in_subscriber(const char* what) const;
  void step(write_step s) const;
  document initial_document();

  hotswap::domain& domain_;
  history_dir files_;
  schema rules_;
  store_options options_;
  std::unique_ptr<snapshot_slot> slot_;

  mutable std::mutex writer_mutex_;  // saves, updates, write_to_disk, subscribers list
  std::uint64_t serving_major_ = 0;  // guarded by writer_mutex_
  std::uint64_t base_minor_ = 0;     // guarded by writer_mutex_: newest history minor of serving_major_
  bool pending_ = false;             // guarded by writer_mutex_
  std::size_t last_main_hash_ = 0;   // guarded by writer_mutex_: the main file content last handled
  // guarded by writer_mutex_: the main file's mode and owner when last
  // opened, which every copy takes; owner-only until it was opened once.
  file_access main_access_{0600, {}, {}};
  std::vector<std::pair<std::uint64_t, subscriber>> subscribers_;  // guarded by writer_mutex_
  std::uint64_t next_subscriber_ = 1;                              // guarded by writer_mutex_
  // The thread inside notify(), to refuse re-entry. Relaxed: only compared
  // with the calling thread's own id, which only that thread ever stores.
  std::atomic<std::thread::id> notifying_{};

  std::unique_ptr<hotswap::watch::watcher> watcher_;
};

}  // namespace hotswap::config
