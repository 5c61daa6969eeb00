// What callers, swappers, backends and versions share during one run: the
// age floor, swap marks, writer-side histograms and the checks' counters.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "clock.hpp"
#include "histogram.hpp"

namespace hotswap::stress {

/// Every invariant the rig checks; each counts its violations.
enum class violation : unsigned {
  dead_version,    ///< a call ran in a version whose canary was poisoned (use after reclaim)
  went_backwards,  ///< a caller saw an older version after a newer one (per-call; pinned: across sessions)
  stale_version,   ///< a call saw a version older than the age floor it read before its section
  pin_changed,     ///< a pinned session saw more than one version
  lost_call,       ///< a call was issued but did not complete
  over_cap,        ///< more replaced versions alive than the backend's configured cap
  leaked,          ///< versions created but never destroyed, after the backend was torn down
  double_destroy,  ///< a version's destructor ran on an already poisoned version
  count_
};
inline constexpr std::size_t violation_kinds = static_cast<std::size_t>(violation::count_);
inline constexpr std::array<std::string_view, violation_kinds> violation_names = {
    "dead_version", "went_backwards", "stale_version", "pin_changed",
    "lost_call",    "over_cap",       "leaked",        "double_destroy"};

using violation_counts = std::array<std::uint64_t, violation_kinds>;

/// Remembers when each version was replaced, so that its destructor can tell
/// the retire-to-reclaim latency. Indexed by version number; a version whose
/// entry was overwritten (far more versions in flight than slots) is skipped.
class retire_times {
  static constexpr std::size_t size = std::size_t{1} << 16;
  struct entry {
    std::atomic<std::uint64_t> number{~std::uint64_t{0}};
    std::atomic<std::uint64_t> tick{0};
  };

 public:
  retire_times() : entries_(std::make_unique<entry[]>(size)) {}

  /// Swapper, before the publish that replaces version `n`.
  void note(std::uint64_t n, std::uint64_t tick) noexcept {
    entry& e = entries_[n & (size - 1)];
    // A tiny seqlock without fences (ThreadSanitizer does not model fences):
    // invalidate, write the tick (release: after the invalidation), validate.
    e.number.store(~std::uint64_t{0}, std::memory_order_relaxed);
    e.tick.store(tick, std::memory_order_release);
    e.number.store(n, std::memory_order_release);  // pairs with the first load in lookup()
  }
  /// Swapper, when that publish was refused: `n` was not retired after all.
  void forget(std::uint64_t n) noexcept {
    entries_[n & (size - 1)].number.store(~std::uint64_t{0}, std::memory_order_relaxed);
  }
  /// Destructor of version `n` (on the reclaimer). The publish that retired it
  /// happens before (retire -> grace period -> reclaim), so the note is visible.
  bool lookup(std::uint64_t n, std::uint64_t& tick) const noexcept {
    const entry& e = entries_[n & (size - 1)];
    if (e.number.load(std::memory_order_acquire) != n) return false;
    tick = e.tick.load(std::memory_order_acquire);  // acquire: the re-check below reads after it
    return e.number.load(std::memory_order_relaxed) == n;
  }

 private:
  std::unique_ptr<entry[]> entries_;
};

struct run_probe {
  // ---- read by every call (each on its own cache line) ---------------------
  /// Age floor: the number of the version that was serving when the most
  /// recent completed grace period started (for atomic<shared_ptr>, the newest
  /// version whose publish returned). A section that starts after loading
  /// `floor` with acquire must see that version or a newer one.
  alignas(64) std::atomic<std::uint64_t> floor{0};
  /// Tick taken just before the latest publish began, for "after swap" windows.
  alignas(64) std::atomic<std::uint64_t> last_swap_tick{0};
  /// Newest version whose publish has returned (release; read by grace hooks).
  std::atomic<std::uint64_t> published{0};

  // ---- writer side ----------------------------------------------------------
  alignas(64) shared_histogram grace;  ///< one grace period (synchronize) each
  shared_histogram reclaim;            ///< retire -> destructor of the version
  shared_histogram teardown;           ///< a version's own destruction (plugin: shutdown + dlclose)
  shared_histogram publish;            ///< one successful publish call each
  retire_times retired_at;

  alignas(64) std::atomic<std::uint64_t> versions_created{0};
  std::atomic<std::uint64_t> versions_destroyed{0};
  std::atomic<std::uint64_t> versions_retired{0};  ///< successful publishes (each replaces one)
  std::array<std::atomic<std::uint64_t>, violation_kinds> violations{};

  void raise_floor(std::uint64_t v) noexcept {
    std::uint64_t cur = floor.load(std::memory_order_relaxed);
    // Release pairs with the callers' acquire load of `floor`: the grace
    // period that justified `v` happens before any section that reads it.
    while (cur < v && !floor.compare_exchange_weak(cur, v, std::memory_order_release, std::memory_order_relaxed)) {
    }
  }

  /// Grace-period hooks for backends: the version serving at the start, and
  /// the start tick. `serving` must have been published before the grace
  /// period began (in happens-before); by default the newest returned publish.
  struct grace_token {
    std::uint64_t serving;
    std::uint64_t start;
  };
  grace_token grace_begin() noexcept {
    // Acquire pairs with the swapper's release store of `published`.
    return {published.load(std::memory_order_acquire), cycle_clock::now()};
  }
  grace_token grace_begin(std::uint64_t serving) noexcept { return {serving, cycle_clock::now()}; }
  void grace_end(const grace_token& t) noexcept {
    grace.record(cycle_clock::now() - t.start);
    raise_floor(t.serving);
  }

  void count(violation v, std::uint64_t n = 1) noexcept {
    violations[static_cast<std::size_t>(v)].fetch_add(n, std::memory_order_relaxed);
  }

  /// Versions replaced and not destroyed yet, as the rig counts them.
  std::uint64_t replaced_alive() const noexcept {
    const std::uint64_t r = versions_retired.load(std::memory_order_relaxed);
    const std::uint64_t d = versions_destroyed.load(std::memory_order_relaxed);
    return r > d ? r - d : 0;
  }
};

}  // namespace hotswap::stress
