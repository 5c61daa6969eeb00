// A reference count that threads update without sharing a cache line.
//
// While a version is published, pins increment and decrement one of N shards
// (picked per thread), so connections opening on different cores do not
// fight over one counter. Once the version is unpublished and a grace period
// has passed, no new pin can start from the slot, and the reclaimer calls
// park(): every shard is swapped for a `parked` marker and its count moved into
// one central counter (biased, so it cannot reach zero halfway). From then on
// releases go to the central counter and exactly one party sees it reach zero:
// park() itself, or the release that drops the last pin. This is the Linux
// percpu_ref switch to atomic mode, done once per retired version.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>

#if defined(__has_include)
#if __has_include(<sys/rseq.h>)
#include <sys/rseq.h>
#define HOTSWAP_HAVE_RSEQ 1
#endif
#endif
#ifndef HOTSWAP_HAVE_RSEQ
#define HOTSWAP_HAVE_RSEQ 0
#endif

#include "atomic.hpp"
#include "schedule_point.hpp"

namespace hotswap::detail {

/// The CPU this thread runs on, or -1. Read from the rseq area glibc (>= 2.35)
/// registers for every thread: a thread-local load, no call, no syscall.
inline int current_cpu() noexcept {
#if HOTSWAP_HAVE_RSEQ
  if (__rseq_size > 0) {
    const auto* rs = reinterpret_cast<const volatile struct rseq*>(
        static_cast<const char*>(__builtin_thread_pointer()) + __rseq_offset);
    return static_cast<int>(rs->cpu_id);  // -1 until the kernel filled it in
  }
#endif
  return -1;
}

/// A small number used to spread pins over shards: the current CPU, so that
/// threads running at the same time use different shards however many threads
/// come and go (a per-thread counter collides as soon as threads are replaced:
/// with 2 shards, every other new thread shares a live thread's shard). Only a
/// hint: release() uses the shard acquire returned, so migrating is harmless.
inline unsigned this_thread_shard_hint() noexcept {
  if (const int cpu = current_cpu(); cpu >= 0) return static_cast<unsigned>(cpu);
  // A plain std::atomic: a hint shared by all threads, ordering nothing (and
  // never reached under the model checker, where rseq supplies the CPU).
  static std::atomic<unsigned> next{0};
  thread_local const unsigned hint = next.fetch_add(1, std::memory_order_relaxed);
  return hint;
}

inline std::size_t shard_count(std::size_t wanted) noexcept {
  // hardware_concurrency() is get_nprocs(): glibc opens and reads
  // /sys/devices/system/cpu/online each time. Ask once, not on every publish.
  static const std::size_t hardware = std::min<std::size_t>(64, std::max(1U, std::thread::hardware_concurrency()));
  return std::bit_ceil(wanted == 0 ? hardware : wanted);
}

class pin_counter {
  static constexpr std::uint64_t parked = std::uint64_t{1} << 63;
  static constexpr std::int64_t bias = std::int64_t{1} << 62;
  struct alignas(64) shard {
    atomic<std::uint64_t> count{0};
  };

 public:
  explicit pin_counter(std::size_t shards) : shards_(new shard[shard_count(shards)]), mask_(shard_count(shards) - 1) {}

  /// A pin taken inside a read section on a version that is still reachable
  /// (so not parked yet). Returns the shard to hand back to release().
  unsigned acquire_fresh() noexcept {
    const unsigned s = this_thread_shard_hint() & mask_;
    // Relaxed: park() runs after a grace period that waits for our read
    // section (epoch_grace.hpp, EG.E/EG.D), which orders this increment before PC.P2.
    shards_[s].count.fetch_add(1, std::memory_order_relaxed);
    return s;
  }

  /// A copy of an existing pin on `s`: the count is non-zero meanwhile.
  void acquire_copy(unsigned s) noexcept {
    std::uint64_t cur = shards_[s].count.load(std::memory_order_relaxed);
    while ((cur & parked) == 0)
      if (shards_[s].count.compare_exchange_weak(cur, cur + 1, std::memory_order_relaxed)) return;
    // PC.P3: we read the marker PC.P2 wrote; this fence makes that read synchronise
    // with PC.P2, so park()'s bias store happens before our central update (it
    // cannot land before the store and be overwritten). No checker run here
    // shows this lost update: it needs a modification order of central_ that
    // disagrees with execution order, which Relacy never produces and the TSO
    // model and the explorer cannot; an axiomatic C11 checker (herd7, GenMC)
    // could. The argument above is the check.
    thread_fence(std::memory_order_acquire);
    central_.fetch_add(1, std::memory_order_relaxed);
  }

  /// Returns true if this release dropped the last pin of a parked version:
  /// the caller must then hand the version to the reclaimer.
  bool release(unsigned s) noexcept {
    std::uint64_t cur = shards_[s].count.load(std::memory_order_relaxed);
    HOTSWAP_SCHEDULE_POINT("pin: releasing");
    while ((cur & parked) == 0)
      // PC.P1: release pairs with PC.P2's acquire: our reads of the version happen
      // before park() and so before the version is destroyed.
      if (shards_[s].count.compare_exchange_weak(cur, cur - 1, p1_order(), std::memory_order_relaxed))
        return false;
    thread_fence(std::memory_order_acquire);  // PC.P3, as in acquire_copy()
    // PC.P4 (acq_rel): release our reads; acquire every earlier PC.P4 and park()'s
    // final PC.P4 if we are the one that reaches zero.
    return central_.fetch_sub(1, std::memory_order_acq_rel) == 1;
  }

  /// Reclaimer only, once, after the version's grace period. Returns true if
  /// no pin is left (the caller destroys); otherwise the last release() will.
  bool park() noexcept {
    central_.store(bias, std::memory_order_relaxed);  // published to PC.P3 by PC.P2's release
    for (std::size_t i = 0; i <= mask_; ++i) {
      HOTSWAP_SCHEDULE_POINT("reclaimer: parking a shard");
      // PC.P2 (acq_rel): acquire pairs with PC.P1 (releases on this shard happened
      // before); release pairs with PC.P3 (the bias is in place for anyone who
      // sees the marker).
      const std::uint64_t moved = shards_[i].count.exchange(parked, std::memory_order_acq_rel);
      HOTSWAP_SCHEDULE_POINT("reclaimer: shard parked, its count not moved yet");
      central_.fetch_add(static_cast<std::int64_t>(moved), std::memory_order_relaxed);
    }
    return central_.fetch_sub(bias, std::memory_order_acq_rel) == bias;  // PC.P4
  }

  /// Pins held now (a snapshot, for status pages).
  std::uint64_t approximate() const noexcept {
    std::int64_t total = 0;
    bool any_parked = false;
    for (std::size_t i = 0; i <= mask_; ++i) {
      const std::uint64_t c = shards_[i].count.load(std::memory_order_relaxed);
      if (c & parked) any_parked = true;
      else total += static_cast<std::int64_t>(c);
    }
    if (any_parked) {
      // While park() runs the central count is the bias plus or minus the
      // pins in flight: a release can land between a shard's exchange and the
      // add of its count, leaving it just below the bias. Pins never number
      // anywhere near 2^61, so halfway to the bias tells the two phases apart.
      const std::int64_t c = central_.load(std::memory_order_relaxed);
      total += c >= bias / 2 ? c - bias : c;
    }
    return total > 0 ? static_cast<std::uint64_t>(total) : 0;
  }

 private:
  static std::memory_order p1_order() noexcept {
    // The model checker's mutant pin_release_relaxed; release in every build.
    return weakened(mutant::pin_release_relaxed) ? std::memory_order_relaxed : std::memory_order_release;
  }

  std::unique_ptr<shard[]> shards_;
  std::size_t mask_;
  alignas(64) atomic<std::int64_t> central_{0};
};

}  // namespace hotswap::detail
