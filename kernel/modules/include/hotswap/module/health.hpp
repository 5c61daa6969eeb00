// Per-version health: what the host reports about each call, counted without
// a shared cache line on the call path.
//
// The host tells a version_health how each call it ran ended (ok or error) and
// how long it took. Each calling thread writes only its own shard (a cache
// line group of relaxed counters and a latency histogram), so two threads
// never write the same line; a reader (the canary's verdict, a status page)
// sums the shards into a health_snapshot. Snapshots subtract, so "since the
// step began" is a snapshot minus the one taken when it began: nothing is ever
// reset under writers.
//
//   hotswap::modules::version_health h;
//   h.record(outcome::ok, std::chrono::microseconds(180));     // per call, on its thread
//   health_snapshot now = h.snapshot();  now.p(0.99);          // merged when read
//
// The histogram is log-linear: 8 buckets per power of two of nanoseconds, so a
// bucket's upper edge is at most 12.5% above any latency in it; quantiles are
// reported as that upper edge (never optimistic).
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace hotswap::modules {

enum class outcome : std::uint8_t { ok, error };

/// Log-linear latency buckets (nanoseconds): 8 per octave up to 2^40 ns (~18 min).
struct latency_buckets {
  static constexpr unsigned sub_bits = 3;
  static constexpr unsigned per_octave = 1u << sub_bits;
  static constexpr unsigned max_octave = 40;
  static constexpr std::size_t count = (max_octave + 1) * per_octave;

  static constexpr std::size_t index(std::uint64_t ns) noexcept {
    if (ns < per_octave) return static_cast<std::size_t>(ns);  // exact below 8 ns
    const unsigned msb = 63u - static_cast<unsigned>(std::countl_zero(ns));
    if (msb > max_octave) return count - 1;
    const std::uint64_t sub = (ns >> (msb - sub_bits)) & (per_octave - 1);
    return static_cast<std::size_t>((msb - sub_bits + 1) * per_octave + sub);
  }
  /// The largest latency that lands in bucket `i` (its inclusive upper edge).
  static constexpr std::uint64_t upper(std::size_t i) noexcept {
    if (i < per_octave) return i;
    const std::uint64_t octave = i / per_octave + sub_bits - 1;
    const std::uint64_t sub = i % per_octave;
    return ((per_octave + sub + 1) << (octave - sub_bits)) - 1;
  }
};

/// Counters of one version (or the difference of two snapshots of it).
struct health_snapshot {
  std::uint64_t ok = 0, errors = 0;
  std::uint64_t fallbacks = 0;  ///< calls of this version that failed and were re-run on stable
  std::uint64_t shadow_compared = 0, shadow_mismatched = 0;  ///< shadow runs of this version
  std::array<std::uint64_t, latency_buckets::count> latency{};  ///< calls per bucket (ok and errors)

  std::uint64_t calls() const noexcept { return ok + errors; }
  double error_rate() const noexcept { return calls() == 0 ? 0.0 : static_cast<double>(errors) / calls(); }

  /// The q-quantile's bucket upper edge in nanoseconds (0 without samples).
  std::uint64_t p(double q) const noexcept {
    std::uint64_t total = 0;
    for (std::uint64_t n : latency) total += n;
    if (total == 0) return 0;
    // The smallest bucket whose cumulative count reaches ceil(q * total).
    auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total));
    if (static_cast<double>(rank) < q * static_cast<double>(total)) ++rank;
    if (rank == 0) rank = 1;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < latency.size(); ++i) {
      seen += latency[i];
      if (seen >= rank) return latency_buckets::upper(i);
    }
    return latency_buckets::upper(latency.size() - 1);
  }
  /// Calls slower than the bucket holding `ns` (bucket resolution, the same for every version).
  std::uint64_t slower_than(std::uint64_t ns) const noexcept {
    std::uint64_t n = 0;
    for (std::size_t i = latency_buckets::index(ns) + 1; i < latency.size(); ++i) n += latency[i];
    return n;
  }

  health_snapshot& operator-=(const health_snapshot& base) noexcept {
    ok -= base.ok;
    errors -= base.errors;
    fallbacks -= base.fallbacks;
    shadow_compared -= base.shadow_compared;
    shadow_mismatched -= base.shadow_mismatched;
    for (std::size_t i = 0; i < latency.size(); ++i) latency[i] -= base.latency[i];
    return *this;
  }
  friend health_snapshot operator-(health_snapshot a, const health_snapshot& b) noexcept { return a -= b; }
};

/// One version's health, written per thread, merged when read.
class version_health {
 public:
  /// More shards than threads that report is the fast case; beyond it two
  /// threads share a shard, which stays correct (atomic adds), only slower.
  static constexpr std::size_t shards = 32;

  void record(outcome o, std::chrono::nanoseconds latency) noexcept {
    shard& s = mine();
    bump(o == outcome::ok ? s.ok : s.errors);
    const auto ns = latency.count() < 0 ? 0u : static_cast<std::uint64_t>(latency.count());
    bump(s.latency[latency_buckets::index(ns)]);
  }
  void record_fallback() noexcept { bump(mine().fallbacks); }
  void record_shadow(bool matched) noexcept {
    shard& s = mine();
    bump(s.shadow_compared);
    if (!matched) bump(s.shadow_mismatched);
  }

  health_snapshot snapshot() const noexcept {
    health_snapshot out;
    // Relaxed: counters, read as a snapshot that may miss calls in flight; no partner.
    for (const shard& s : *shards_) {
      out.ok += s.ok.load(std::memory_order_relaxed);
      out.errors += s.errors.load(std::memory_order_relaxed);
      out.fallbacks += s.fallbacks.load(std::memory_order_relaxed);
      out.shadow_compared += s.shadow_compared.load(std::memory_order_relaxed);
      out.shadow_mismatched += s.shadow_mismatched.load(std::memory_order_relaxed);
      for (std::size_t i = 0; i < out.latency.size(); ++i) out.latency[i] += s.latency[i].load(std::memory_order_relaxed);
    }
    return out;
  }

 private:
  struct alignas(64) shard {
    std::atomic<std::uint64_t> ok{0}, errors{0}, fallbacks{0}, shadow_compared{0}, shadow_mismatched{0};
    std::array<std::atomic<std::uint64_t>, latency_buckets::count> latency{};
  };

  // Relaxed add: a counter on a line only this thread writes (while threads <=
  // shards), so the add never contends; readers sum at any time; no partner.
  static void bump(std::atomic<std::uint64_t>& c) noexcept { c.fetch_add(1, std::memory_order_relaxed); }

  shard& mine() noexcept { return (*shards_)[thread_index() % shards]; }

  // A small per-thread number handed out in order of first use. (A copy of it
  // in another shared object only changes which shard a thread picks.)
  static std::size_t thread_index() noexcept {
    static std::atomic<std::size_t> next{0};
    // Relaxed: a ticket, not a publication; no partner.
    thread_local const std::size_t index = next.fetch_add(1, std::memory_order_relaxed);
    return index;
  }

  std::unique_ptr<std::array<shard, shards>> shards_ = std::make_unique<std::array<shard, shards>>();
};

}  // namespace hotswap::modules
