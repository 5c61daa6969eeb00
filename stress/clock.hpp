// The rig's clock: the CPU's time-stamp counter, calibrated against
// std::chrono::steady_clock once at start.
//
// start() is `lfence; rdtsc; lfence`: the rig's own loads before it (the age
// floor, the swap mark, which miss in cache after every swap) finish first, and
// the call starts after the read. stop() is `rdtscp`: it waits for the call's
// instructions to finish.
// Neither is a full serialising barrier, and on a virtual machine the counter
// may tick coarsely, so each run reports the measured overhead of an empty
// start()/stop() pair and the counter's resolution next to its latencies;
// recorded latencies include that overhead (nothing is subtracted).
//
// Without an invariant TSC (constant_tsc + nonstop_tsc in /proc/cpuinfo) or
// off x86-64, ticks are steady_clock nanoseconds instead, and the report says so.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

namespace hotswap::stress {

struct clock_info {
  bool tsc = false;              ///< ticks are TSC cycles (else steady_clock ns)
  double ns_per_tick = 1.0;
  double overhead_ns = 0.0;      ///< median of an empty start()/stop() pair
  double resolution_ns = 0.0;    ///< median non-zero step between two back-to-back reads
  std::string source;            ///< human description for the report
};

namespace detail {
inline bool use_tsc = false;  // fixed by calibrate() before any thread starts
}

class cycle_clock {
 public:
  static std::uint64_t start() noexcept {
#if defined(__x86_64__)
    if (detail::use_tsc) {
      _mm_lfence();  // earlier loads (the rig's own bookkeeping) finish before the read
      const std::uint64_t t = __rdtsc();
      _mm_lfence();  // the measured work starts after the read
      std::atomic_signal_fence(std::memory_order_seq_cst);
      return t;
    }
#endif
    return steady_ns();
  }

  static std::uint64_t stop() noexcept {
#if defined(__x86_64__)
    if (detail::use_tsc) {
      std::atomic_signal_fence(std::memory_order_seq_cst);
      unsigned aux;
      return __rdtscp(&aux);  // waits for the measured work to finish
    }
#endif
    return steady_ns();
  }

  /// A cheap timestamp for marks and writer-side intervals (no fences).
  static std::uint64_t now() noexcept {
#if defined(__x86_64__)
    if (detail::use_tsc) return __rdtsc();
#endif
    return steady_ns();
  }

  /// Chooses the counter, calibrates it over `span` and measures its overhead.
  /// Call once, before any measuring thread starts.
  static const clock_info& calibrate(std::chrono::milliseconds span);
  static const clock_info& info() noexcept;

  static double to_ns(std::uint64_t ticks) noexcept { return static_cast<double>(ticks) * info_ns_per_tick(); }
  static std::uint64_t from_ns(double ns) noexcept {
    return static_cast<std::uint64_t>(ns / info_ns_per_tick());
  }

 private:
  static double info_ns_per_tick() noexcept;
  static std::uint64_t steady_ns() noexcept {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
  }
};

}  // namespace hotswap::stress
