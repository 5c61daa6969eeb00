// The save sequence, API updates and write-to-disk of config::store.
#include "hotswap/config/store.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <system_error>

namespace hotswap::config {

namespace fs = std::filesystem;

namespace {

std::size_t content_hash(std::string_view text) { return std::hash<std::string_view>{}(text); }

bool newer(const struct stat& a, const struct stat& b) {
  if (a.st_mtim.tv_sec != b.st_mtim.tv_sec) return a.st_mtim.tv_sec > b.st_mtim.tv_sec;
  return a.st_mtim.tv_nsec > b.st_mtim.tv_nsec;
}

/// Marks the calling thread as the one running subscribers, for its scope.
class subscriber_scope {
 public:
  explicit subscriber_scope(std::atomic<std::thread::id>& who) : who_(who) {
    who_.store(std::this_thread::get_id(), std::memory_order_relaxed);  // see store::notifying_
  }
  ~subscriber_scope() { who_.store(std::thread::id{}, std::memory_order_relaxed); }
  subscriber_scope(const subscriber_scope&) = delete;
  subscriber_scope& operator=(const subscriber_scope&) = delete;

 private:
  std::atomic<std::thread::id>& who_;
};

std::optional<value> value_at(const snapshot::map& m, const std::string& key) {
  const auto it = m.find(key);
  if (it == m.end()) return std::nullopt;
  return it->second;
}

}  // namespace

store::store(hotswap::domain& dom, fs::path main_file, schema rules, store_options options)
    : domain_(dom), files_(std::move(main_file)), rules_(std::move(rules)), options_(std::move(options)) {
  // The watcher goes in before the file is read: a save made while it is
  // read is then reported once start() runs, and handled then.
  watch::watch_options watching;
  watching.filter = watch::name_equals(files_.main_file().filename().string());
  watching.debounce = options_.debounce;
  watching.mode = options_.watch;
  watching.on_error = [this](const std::exception& e) { log(log_level::error, e.what()); };
  watcher_ = std::make_unique<hotswap::watch::watcher>(files_.directory(), std::move(watching),
                                                [this](const watch::file_change& c) {
                                                  if (c.kind == watch::change_kind::removed) {
                                                    log(log_level::warning, files_.main_file().string() +
                                                                                " was removed; the serving version keeps serving");
                                                    return;
                                                  }
                                                  std::lock_guard lock(writer_mutex_);
                                                  handle_save();
                                                });
  document initial = initial_document();
  slot_ = std::make_unique<snapshot_slot>(domain_, "history " + std::to_string(serving_major_) + "." +
                                                       std::to_string(base_minor_),
                                          options_.slot, std::move(initial.values));
}

store::~store() { stop(); }

document store::initial_document() {
  const file_read read = read_config(files_.main_file(), options_.limits.max_bytes);
  const auto& text = read.text;
  if (read.access) main_access_ = *read.access;
  load_result main;
  if (text) main = load(*text, files_.main_file().string(), &rules_, options_.limits);
  if (main) {
    // No history key: never written by write-to-disk, so major 0.
    serving_major_ = main.doc->history_major.value_or(0);
    last_main_hash_ = content_hash(*text);
    // Every serving snapshot is a history file: record the main file unless
    // the newest history file of its major already holds the same values.
    const auto base = files_.newest(serving_major_);
    if (base) {
      const auto recorded = load_file(base->path, &rules_, options_.limits);
      if (recorded && recorded.doc->values == main.doc->values) {
        base_minor_ = base->minor;
        return std::move(*main.doc);
      }
    }
    base_minor_ = base ? base->minor + 1 : 0;
    write_durably(files_.path_for(serving_major_, base_minor_), *text, main_access_);
    return std::move(*main.doc);
  }
  const config_error& why = text ? main.error : read.error;
  log(log_level::error, "cannot serve " + files_.main_file().string() + ": " + why.to_string());
  const auto all = files_.list();
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    auto recorded = load_file(it->path, &rules_, options_.limits);
    if (!recorded) continue;
    log(log_level::warning, "serving history " + it->path.string() + " instead");
    serving_major_ = it->major;
    base_minor_ = it->minor;
    return std::move(*recorded.doc);
  }
  throw config_exception(why);
}

void store::start() { watcher_->start(); }
void store::stop() {
  if (watcher_) watcher_->stop();
}
bool store::sync(std::chrono::nanoseconds timeout) { return watcher_->sync(timeout); }

save_report store::reload() {
  check_not_in_subscriber("reload()");
  std::lock_guard lock(writer_mutex_);
  return handle_save();
}

save_report store::handle_save() {
  save_report report = save_sequence();
  if (options_.on_save) options_.on_save(report);
  return report;
}

save_report store::save_sequence() {
  const fs::path& main = files_.main_file();
  file_read read = read_config(main, options_.limits.max_bytes);
  if (read.access) main_access_ = *read.access;
  const auto& text = read.text;
  if (!text) {
    if (!fs::exists(main)) {
      log(log_level::warning, main.string() + " is gone; the serving version keeps serving");
      return {};
    }
    // Never more of it than a bounded head, and nothing of a file not read.
    const std::string note = read.head.empty() ? "its bytes were not copied"
                                               : "only its first " + std::to_string(read.head.size()) + " bytes are kept";
    return reject(read.head, std::move(read.error), note);
  }
  last_main_hash_ = content_hash(*text);
  auto loaded = load(*text, main.string(), &rules_, options_.limits);
  if (!loaded) return reject(*text, std::move(loaded.error));
  const document& doc = *loaded.doc;

  // 1. The history major the edit was based on.
  const std::uint64_t major = doc.history_major.value_or(serving_major_);
  if (major < serving_major_) {
    return reject(*text, {main.string(), 1, 1,
                          "this edit is based on history version " + std::to_string(major) + ", but version " +
                              std::to_string(serving_major_) +
                              " has been written to disk since; redo the edit on the current file"});
  }
  // 2. The newest history file of that major: the edit's base.
  const auto base_entry = files_.newest(major);
  if (major > serving_major_ && !base_entry) {
    return reject(*text, {main.string(), 1, 1,
                          std::string(history_major_key) + " = " + std::to_string(major) +
                              " names no history version (the newest is " + std::to_string(serving_major_) + ")"});
  }
  auto current = slot_->read();
  const std::uint64_t serving_version = current.version().number;
  snapshot::map next = current->values();
  const snapshot serving = *current;
  { auto done = std::move(current); }  // leave the read section

  snapshot base = serving;
  if (base_entry) {
    if (auto recorded = load_file(base_entry->path, &rules_, options_.limits)) base = std::move(recorded.doc->values);
  }
  // 3. Diff against the base; a save without a change does nothing.
  const auto edited = diff(base, doc.values);
  if (edited.empty()) return {save_report::outcome::unchanged, {}, {}, {}, {}, serving_version};

  // 4. Apply each change to the serving snapshot, unless an API update
  // changed the same key since the base (not yet on disk): that is a conflict.
  for (const change& c : edited) {
    const auto now = value_at(next, c.key);
    if (now != c.before && now != c.after) {
      const auto pos = doc.positions.find(c.key);
      return reject(*text, {main.string(), pos == doc.positions.end() ? 1 : pos->second.first,
                            pos == doc.positions.end() ? 1 : pos->second.second,
                            "'" + c.key + "' was changed in memory since history version " + std::to_string(major) +
                                "." + std::to_string(base_entry ? base_entry->minor : 0) +
                                " (an update not yet written to disk); write to disk, then redo this edit"});
    }
    if (c.after) {
      next.insert_or_assign(c.key, *c.after);
    } else {
      next.erase(c.key);
    }
  }
  if (auto invalid = check_and_complete(next, rules_, doc.positions, main.string())) return reject(*text, *invalid);

  // 5. Publish, then record the file as the next history version.
  snapshot candidate(std::move(next));
  save_report report;
  report.result = save_report::outcome::applied;
  report.changes = diff(serving, candidate);
  report.version = serving_version;
  const std::uint64_t minor = base_entry ? base_entry->minor + 1 : 0;
  const std::string label = "history " + std::to_string(major) + "." + std::to_string(minor);
  if (!report.changes.empty()) {
    auto published = publish(serving_version, std::move(candidate), label);
    if (!published) {
      const std::string why = published.status == publish_status::backpressure
                                  ? "too many replaced versions are still draining (slot backpressure)"
                                  : "another writer published first";
      log(log_level::error, "not applied: " + main.string() + ": " + why + "; the file is unchanged, save it again");
      return {save_report::outcome::rejected, config_error{main.string(), 1, 1, why}, {}, {}, {}, published.version};
    }
    report.version = published.version;
    notify(*slot_->read(), report.changes);  // told right after the publish, before the history write
  }
  // A newer major than ours: another writer wrote the store to disk; adopt
  // it now that the edit based on it was accepted.
  serving_major_ = major;
  try {
    write_durably(files_.path_for(major, minor), *text, main_access_);
    base_minor_ = minor;
    report.history = history_entry{major, minor, files_.path_for(major, minor)};
    files_.prune(options_.history_keep, report.history);
  } catch (const std::system_error& e) {
    log(log_level::error, std::string("applied, but the history file could not be written: ") + e.what());
  }
  log(log_level::info, "applied " + main.string() + " as " + label + " (" + std::to_string(report.changes.size()) +
                           " changes, version " + std::to_string(report.version) + ")");
  return report;
}

save_report store::reject(std::string_view kept, config_error error, std::string_view note) {
  save_report report;
  report.result = save_report::outcome::rejected;
  report.version = slot_->current_version();
  const auto numbers = files_.error_numbers();
  const std::uint64_t n = numbers.empty() ? 1 : numbers.back() + 1;
  report.error_copy = files_.error_copy(n);
  try {
    write_durably(report.error_copy, kept, main_access_);
    write_durably(files_.error_reason(n),
                  error.to_string() + "\n" + (note.empty() ? "" : "# " + std::string(note) + "\n"), main_access_);
    files_.prune_errors(options_.error_keep);
  } catch (const std::exception& e) {
    log(log_level::error, std::string("cannot keep the rejected file: ") + e.what());
    report.error_copy.clear();
  }
  log(log_level::error, "rejected " + error.to_string() + " (kept as " + report.error_copy.string() +
                            "); version " + std::to_string(report.version) + " keeps serving");
  report.error = std::move(error);
  return report;
}

publish_result store::publish(std::uint64_t expected, snapshot&& next, const std::string& label) {
  auto published = slot_->compare_and_publish(expected, std::move(next), label);
  if (published.status != publish_status::backpressure) return published;
  // Too many replaced versions wait for reclamation (a starved reclaimer, or
  // pins held long). Wait for the reclaimer once, then retry: a save must not
  // be dropped for a backlog that a grace period clears. `next` is untouched
  // by a refused publish. A caller inside a read section cannot wait.
  try {
    domain_.barrier();
  } catch (const std::logic_error&) {
    return published;
  }
  return slot_->compare_and_publish(expected, std::move(next), label);
}

update_result store::update(std::uint64_t expected, const std::vector<edit>& edits) {
  check_not_in_subscriber("update()");
  std::lock_guard lock(writer_mutex_);
  update_result result;
  snapshot before;
  {
    auto current = slot_->read();
    result.version = current.version().number;
    if (result.version != expected) {
      result.result = update_result::status::conflict;
      return result;
    }
    before = *current;
  }
  snapshot::map next = before.values();
  for (const edit& e : edits) {
    if (e.new_value) {
      next.insert_or_assign(e.key, *e.new_value);
    } else {
      next.erase(e.key);
    }
  }
  if (auto invalid = check_and_complete(next, rules_, {}, "<update>")) {
    result.result = update_result::status::invalid;
    result.error = std::move(invalid);
    return result;
  }
  snapshot candidate(std::move(next));
  result.changes = diff(before, candidate);
  if (result.changes.empty()) {
    result.result = update_result::status::unchanged;
    return result;
  }
  const auto published = publish(expected, std::move(candidate), "update");
  result.version = published.version;
  if (!published) {
    result.result = published.status == publish_status::conflict ? update_result::status::conflict
                                                                  : update_result::status::backpressure;
    return result;
  }
  pending_ = true;
  notify(*slot_->read(), result.changes);
  return result;
}

write_result store::write_to_disk() {
  check_not_in_subscriber("write_to_disk()");
  std::lock_guard lock(writer_mutex_);
  write_result result;
  if (!pending_) {
    result.result = write_result::status::nothing_pending;
    result.message = "no changes since the last write";
    return result;
  }
  const snapshot values = *slot_->read();
  const auto newest = files_.newest();
  result.major = std::max(serving_major_, newest ? newest->major : 0) + 1;
  const std::string text = to_toml(values, result.major);
  const fs::path& main = files_.main_file();
  const fs::path temp = files_.temp_file();
  int lock_fd = -1;
  try {
    write_and_sync(temp, text, main_access_);
    step(write_step::temp_written);
    write_durably(files_.path_for(result.major, 0), text, main_access_);
    step(write_step::history_written);

    const auto refuse = [&](write_result::status s, std::string why) {
      result.result = s;
      result.kept_temp = temp;
      result.message = main.string() + ": " + why + "; not replaced, the new content is kept in " + temp.string();
      log(log_level::warning, result.message);
    };
    struct stat main_stat {};
    struct stat temp_stat {};
    config_error unreadable;
    if (::stat(main.c_str(), &main_stat) == 0) {
      lock_fd = ::open(main.c_str(), O_RDONLY | O_CLOEXEC);
      if (lock_fd >= 0 && ::flock(lock_fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
        refuse(write_result::status::locked, "another editor holds a lock on it");
      } else if ((main_stat.st_mode & (S_IWUSR | S_IWGRP | S_IWOTH)) == 0) {
        refuse(write_result::status::read_only, "it is read-only");
      } else if (::stat(temp.c_str(), &temp_stat) == 0 && newer(main_stat, temp_stat)) {
        refuse(write_result::status::main_newer, "it was modified after the new content was prepared");
      } else if (auto t = read_text(main, options_.limits.max_bytes, unreadable); t && content_hash(*t) != last_main_hash_) {
        refuse(write_result::status::main_newer, "it holds an edit the store has not handled yet");
      }
    }
    if (result.result != write_result::status::written) {
      if (lock_fd >= 0) ::close(lock_fd);
      return result;
    }
    step(write_step::checks_passed);
    if (::rename(temp.c_str(), main.c_str()) != 0)
      throw std::system_error(errno, std::system_category(), "cannot rename onto '" + main.string() + "'");
    sync_directory(files_.directory());
    if (lock_fd >= 0) ::close(lock_fd);
    lock_fd = -1;
    step(write_step::replaced);
    serving_major_ = result.major;
    base_minor_ = 0;
    pending_ = false;
    last_main_hash_ = content_hash(text);
    files_.prune(options_.history_keep, history_entry{result.major, 0, {}});
    step(write_step::pruned);
  } catch (const std::system_error& e) {
    if (lock_fd >= 0) ::close(lock_fd);
    result.result = write_result::status::io_error;
    result.message = e.what();
    log(log_level::error, result.message);
    return result;
  }
  result.message = "wrote " + main.string() + " as history version " + std::to_string(result.major) + ".0";
  log(log_level::info, result.message);
  return result;
}

bool store::pending() const {
  std::lock_guard lock(writer_mutex_);
  return pending_;
}

history_entry store::serving_history() const {
  std::lock_guard lock(writer_mutex_);
  return {serving_major_, base_minor_, files_.path_for(serving_major_, base_minor_)};
}

std::uint64_t store::subscribe(subscriber fn, bool replay_current) {
  check_not_in_subscriber("subscribe()");
  std::lock_guard lock(writer_mutex_);
  if (replay_current) {
    const subscriber_scope scope(notifying_);
    fn(*slot_->read(), {});
  }
  subscribers_.emplace_back(next_subscriber_, std::move(fn));
  return next_subscriber_++;
}

void store::unsubscribe(std::uint64_t id) {
  check_not_in_subscriber("unsubscribe()");
  std::lock_guard lock(writer_mutex_);
  std::erase_if(subscribers_, [id](const auto& s) { return s.first == id; });
}

void store::notify(const snapshot& now, const std::vector<change>& changes) {
  const subscriber_scope scope(notifying_);
  for (const auto& [id, fn] : subscribers_) {
    try {
      fn(now, changes);
    } catch (const std::exception& e) {
      log(log_level::error, "subscriber " + std::to_string(id) + " threw: " + e.what());
    }
  }
}

void store::check_not_in_subscriber(const char* what) const {
  if (notifying_.load(std::memory_order_relaxed) == std::this_thread::get_id())
    throw std::logic_error(std::string("hotswap::config::store: ") + what + " called from a subscriber");
}

void store::step(write_step s) const {
  if (options_.on_write_step) options_.on_write_step(s);
}

void store::log(log_level level, const std::string& message) const {
  if (options_.log) {
    options_.log(level, message);
  } else if (level != log_level::info) {
    std::fprintf(stderr, "hotswap-config: %s\n", message.c_str());
  }
}

}  // namespace hotswap::config
