// What the host knows about one loaded version, and what it tells the world.
//
// A version_record outlives its version (status pages and history keep it):
// identity, state (serving -> draining -> unloaded, or stuck / quarantined),
// timestamps, and the keepalive count through which a plugin's outstanding
// async work keeps its version loaded.
//
// Keepalives and the self pin. A published version holds ONE pin on itself
// (the "self pin") for as long as `holds` > 0. `holds` starts at 1 for "still
// serving" and counts one per keepalive the plugin took. Retiring the version
// drops the serving hold; when `holds` reaches 0 the self pin is released, and
// the kernel's ordinary rule (grace period passed, no pin left) then unloads
// it. A keepalive asked for after that point is refused: the version is
// leaving, and the work must not start.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace hotswap::modules {

struct checked_dependency;  // dependency_check.hpp

enum class version_state {
  loaded,       ///< loaded and started, not published yet
  serving,      ///< the slot's current version
  draining,     ///< replaced; waiting for its grace period, pins and keepalives
  stuck,        ///< draining for longer than the drain deadline (reported once)
  unloaded,     ///< shut down, dlclosed, and verified gone from the process
  quarantined,  ///< still mapped after dlclose (or never drained its keepalives
                ///< before an unpublished unload): its copy is kept, never reused
  retained,     ///< shut down (or abandoned) but deliberately never dlclosed: not
                ///< declared unload-safe, a hook threw or never returned
};

inline const char* to_string(version_state s) noexcept {
  switch (s) {
    case version_state::loaded: return "loaded";
    case version_state::serving: return "serving";
    case version_state::draining: return "draining";
    case version_state::stuck: return "stuck";
    case version_state::unloaded: return "unloaded";
    case version_state::quarantined: return "quarantined";
    case version_state::retained: return "retained";
  }
  return "?";
}

/// Who a version is. Fixed once loaded.
struct version_identity {
  std::string module;         ///< registry / slot name
  std::string file;           ///< the file as requested
  std::string load_path;      ///< what was dlopen'ed (shadow copy, /proc/self/fd/N or the file)
  std::string sha256;
  std::string module_name;    ///< from the descriptor
  std::string build_version;  ///< from the descriptor
  std::uint32_t interface_version = 0;
};

/// A snapshot of one version for status pages.
struct version_report {
  version_identity id;
  std::uint64_t number = 0;  ///< slot version number; 0 if never published
  version_state state = version_state::loaded;
  std::uint64_t pins = 0;        ///< callers' pins now (the self pin not counted)
  std::int64_t keepalives = 0;   ///< the plugin's outstanding async work
  std::chrono::steady_clock::time_point retired_at{}, unloaded_at{};
  std::chrono::nanoseconds drain_time{0};  ///< retired -> unloaded, once unloaded
};

enum class module_event_kind {
  swapped,        ///< a new version was published
  rolled_back,    ///< an older version was published again
  refused,        ///< a request published nothing (message says why)
  unloaded,       ///< a version left the process
  stayed_mapped,  ///< dlclose did not unmap a version: quarantined
  stuck,          ///< a version did not drain by the deadline, or a hook did not return
  plugin_log,     ///< a plugin wrote to the host log
  retained,       ///< a version was shut down but its code stays mapped (message says why)
  canary,         ///< a canary decision: started, step, promoted, rolled_back, aborted (message: evidence)
};

inline const char* to_string(module_event_kind k) noexcept {
  switch (k) {
    case module_event_kind::swapped: return "swapped";
    case module_event_kind::rolled_back: return "rolled_back";
    case module_event_kind::refused: return "refused";
    case module_event_kind::unloaded: return "unloaded";
    case module_event_kind::stayed_mapped: return "stayed_mapped";
    case module_event_kind::stuck: return "stuck";
    case module_event_kind::plugin_log: return "plugin_log";
    case module_event_kind::retained: return "retained";
    case module_event_kind::canary: return "canary";
  }
  return "?";
}

/// One line of the audit log: who asked for what, and what came of it.
struct module_event {
  module_event_kind kind;
  std::string principal;  ///< who asked ("" for the host's own events)
  std::string module;
  std::string file;
  std::uint64_t from_version = 0;
  std::uint64_t to_version = 0;
  std::string from_build, to_build;
  std::string message;  ///< outcome or cause
};

/// Called from swapping threads (some while the slot's swap lock is held) and
/// from unload workers: must be thread-safe, quick, and must not call back
/// into the slot or registry, enter the domain, or wait for a swap. Every text
/// field arrives with control characters replaced by U+FFFD and its size capped
/// (audit.hpp); a sink that throws is counted and never changes an outcome.
using module_log = std::function<void(const module_event&)>;

namespace detail {

/// The pin a published version holds on itself; dropped once.
struct self_hold {
  virtual ~self_hold() = default;
  /// Must not touch *this after releasing the pin: the release may let the
  /// reclaimer destroy the version, and this record with it.
  virtual void drop() noexcept = 0;
};

}  // namespace detail

class version_record {
  using clock = std::chrono::steady_clock;

 public:
  explicit version_record(version_identity id,
                          std::shared_ptr<const std::vector<checked_dependency>> dependencies = {})
      : id_(std::move(id)), dependencies_(std::move(dependencies)) {}

  const version_identity& identity() const noexcept { return id_; }
  /// The dependency bytes this version was checked and loaded with: what a rollback loads again.
  const std::shared_ptr<const std::vector<checked_dependency>>& dependencies() const noexcept { return dependencies_; }

  version_state state() const {
    std::lock_guard lock(mutex_);
    return state_;
  }
  std::uint64_t number() const {
    std::lock_guard lock(mutex_);
    return number_;
  }
  std::int64_t holds() const noexcept { return holds_.load(std::memory_order_relaxed); }  // a snapshot; no partner

  version_report report() const {
    std::lock_guard lock(mutex_);
    version_report r;
    r.id = id_;
    r.number = number_;
    r.state = state_;
    const std::int64_t h = holds_.load(std::memory_order_relaxed);  // a snapshot for status; no partner
    r.keepalives = serving_hold_ ? h - 1 : h;
    r.retired_at = retired_at_;
    r.unloaded_at = unloaded_at_;
    if (unloaded_at_ != clock::time_point{} && retired_at_ != clock::time_point{})
      r.drain_time = unloaded_at_ - retired_at_;
    return r;
  }

  /// Waits until the version has left (unloaded or quarantined). False on timeout.
  bool wait_gone(std::chrono::nanoseconds timeout) const {
    std::unique_lock lock(mutex_);
    return gone_.wait_for(lock, timeout, [&] { return gone_locked(); });
  }

  // ---- keepalives (plugin side, through hotswap_host_api) -----------------

  bool try_hold() noexcept {
    // Relaxed: taking a hold publishes nothing, and the caller is the version's
    // own code, loaded at least until its shutdown returns; only the drop to 0
    // orders anything (drop_hold's acq_rel).
    std::int64_t h = holds_.load(std::memory_order_relaxed);
    do {
      if (h == 0) return false;  // leaving: the self pin is gone or going
    } while (!holds_.compare_exchange_weak(h, h + 1, std::memory_order_relaxed));
    return true;
  }

  void drop_hold() noexcept {
    // acq_rel pairs with the other drops (and with set_self_hold's writes,
    // which precede the serving-hold drop): whoever reaches 0 sees self_.
    if (holds_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    if (self_) self_->drop();  // may free this record: nothing after it
  }

  // ---- host side (module_slot), under the slot's swap mutex ---------------

  void set_self_hold(std::unique_ptr<detail::self_hold> h) noexcept { self_ = std::move(h); }

  void mark_serving(std::uint64_t number) {
    std::lock_guard lock(mutex_);
    number_ = number;
    state_ = version_state::serving;
  }

  /// Replaced (or its slot is going away): drops the serving hold.
  void retire() {
    {
      std::lock_guard lock(mutex_);
      if (!serving_hold_) return;
      serving_hold_ = false;
      if (state_ == version_state::serving || state_ == version_state::loaded) state_ = version_state::draining;
      retired_at_ = clock::now();
    }
    drop_hold();  // may free this record (see drop_hold): last
  }

  /// True the first time a draining version is found past its deadline.
  bool mark_stuck(std::chrono::nanoseconds deadline) {
    std::lock_guard lock(mutex_);
    if (state_ != version_state::draining || clock::now() - retired_at_ < deadline) return false;
    state_ = version_state::stuck;
    return true;
  }

  /// Retired -> now; 0 for a version never published.
  std::chrono::nanoseconds drain_time_so_far() const {
    std::lock_guard lock(mutex_);
    return retired_at_ == clock::time_point{} ? std::chrono::nanoseconds(0) : clock::now() - retired_at_;
  }

  /// Unload done: the image calls this last.
  void mark_gone(version_state final_state) {
    std::lock_guard lock(mutex_);
    state_ = final_state;
    unloaded_at_ = clock::now();
    if (retired_at_ == clock::time_point{}) retired_at_ = unloaded_at_;  // never published
    gone_.notify_all();
  }

  bool gone() const {
    std::lock_guard lock(mutex_);
    return gone_locked();
  }

  /// Drops the serving hold of a version that was never published.
  bool drop_serving_hold_if_held() {
    {
      std::lock_guard lock(mutex_);
      if (!serving_hold_) return false;
      serving_hold_ = false;
    }
    drop_hold();
    return true;
  }

 private:
  bool gone_locked() const noexcept {
    return state_ == version_state::unloaded || state_ == version_state::quarantined || state_ == version_state::retained;
  }

  const version_identity id_;
  const std::shared_ptr<const std::vector<checked_dependency>> dependencies_;
  alignas(64) std::atomic<std::int64_t> holds_{1};  // serving hold + keepalives
  std::unique_ptr<detail::self_hold> self_;          // set before the serving hold can drop
  mutable std::mutex mutex_;
  mutable std::condition_variable gone_;
  bool serving_hold_ = true;  // guarded by mutex_
  version_state state_ = version_state::loaded;
  std::uint64_t number_ = 0;
  clock::time_point retired_at_{}, unloaded_at_{};
};

}  // namespace hotswap::modules
