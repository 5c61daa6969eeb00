// Deferred reclamation: retire now, run the deleter after a grace period.
//
// retire() pushes onto a lock-free stack (O(1), no allocation for intrusive
// nodes) and never runs a deleter itself. The reclaimer works in rounds: take
// the whole stack, wait for ONE grace period, run every deleter of the batch.
// Many retires therefore share a grace period, and a swap never waits for one.
//
// barrier() waits for a round that started after the call to finish, so every
// retire() that returned before barrier() was called has had its deleter run.
// That is the step to take before dlclose() of code whose functions deleters
// may call (liburcu's README asks the same of call_rcu users).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <utility>

#include "detail/schedule_point.hpp"
#include "options.hpp"

namespace hotswap {

/// Intrusive retire node: embed it (or derive from it) to retire without an
/// allocation. `reclaim` runs on the reclaimer after a grace period.
struct retired_node {
  retired_node* next = nullptr;
  void (*reclaim)(retired_node*) = nullptr;
};

/// Counters of one reclaimer. Approximate while they change.
struct reclaim_stats {
  std::uint64_t retired = 0;
  std::uint64_t reclaimed = 0;  ///< deleters run
  std::uint64_t rounds = 0;     ///< rounds, each paying one grace period
};

namespace detail {

/// Runs deleters of retired nodes after a grace period of `Grace`.
template <class Grace>
class reclaimer {
 public:
  reclaimer(Grace& grace, reclaim_mode mode, std::chrono::nanoseconds window) : grace_(grace), window_(window) {
    if (mode == reclaim_mode::background) thread_ = std::thread([this] { run(); });
  }
  reclaimer(const reclaimer&) = delete;
  reclaimer& operator=(const reclaimer&) = delete;

  /// Drains everything retired so far, then stops the background thread.
  ~reclaimer() {
    if (thread_.joinable()) {
      stop_.store(true, std::memory_order_relaxed);
      wake();
      cut_window_short();
      thread_.join();
    }
    while (pending_.load(std::memory_order_acquire) != nullptr) drive_round();
  }

  void retire(retired_node* node) noexcept {
    retired_.fetch_add(1, std::memory_order_relaxed);
    retired_node* head = pending_.load(std::memory_order_relaxed);
    do {
      node->next = head;
      // Release pairs with the acquire exchange in round(): the node's fields
      // (and the object it guards) are complete before the reclaimer sees it.
    } while (!pending_.compare_exchange_weak(head, node, std::memory_order_release, std::memory_order_relaxed));
    if (thread_.joinable() && head == nullptr) wake();
  }

  /// Runs one round on the calling thread if anything is pending. Returns
  /// whether it ran deleters. For reclaim_mode::manual hosts.
  bool poll() {
    if (pending_.load(std::memory_order_acquire) == nullptr) return false;
    drive_round();
    return true;
  }

  void barrier() {
    // Acquire pairs with the release increment in round(): a round numbered
    // higher than what we read starts its take after this point.
    const std::uint64_t seen = rounds_started_.load(std::memory_order_acquire);
    if (!thread_.joinable()) {
      while (rounds_done_.load(std::memory_order_acquire) <= seen) drive_round();
      return;
    }
    barrier_wanted_.store(true, std::memory_order_relaxed);
    wake();
    cut_window_short();
    std::uint64_t done = rounds_done_.load(std::memory_order_acquire);
    while (done <= seen) {
      rounds_done_.wait(done, std::memory_order_acquire);  // pairs with the release store in round()
      done = rounds_done_.load(std::memory_order_acquire);
    }
  }

  std::size_t backlog() const noexcept {
    return static_cast<std::size_t>(retired_.load(std::memory_order_relaxed) -
                                    reclaimed_.load(std::memory_order_relaxed));
  }

  reclaim_stats stats() const noexcept {
    return {retired_.load(std::memory_order_relaxed), reclaimed_.load(std::memory_order_relaxed),
            rounds_done_.load(std::memory_order_relaxed)};
  }

  bool on_reclaimer_thread() const noexcept { return std::this_thread::get_id() == thread_.get_id(); }

 private:
  void wake() noexcept {
    wakeups_.fetch_add(1, std::memory_order_release);  // pairs with the acquire load in run()
    wakeups_.notify_one();
  }

  void run() {
    for (;;) {
      const std::uint32_t seen = wakeups_.load(std::memory_order_acquire);
      const bool wanted = barrier_wanted_.exchange(false, std::memory_order_relaxed);
      if (pending_.load(std::memory_order_acquire) != nullptr || wanted) {
        if (!wanted) linger();
        round();
        continue;
      }
      if (stop_.load(std::memory_order_relaxed)) return;
      wakeups_.wait(seen, std::memory_order_acquire);
    }
  }

  // Lets more retires join this round's grace period (options: reclaim_window).
  void linger() {
    if (window_.count() <= 0) return;
    std::unique_lock lock(window_mutex_);
    window_cv_.wait_for(lock, window_, [&] {
      return barrier_wanted_.load(std::memory_order_relaxed) || stop_.load(std::memory_order_relaxed);
    });
  }

  void cut_window_short() {
    { std::lock_guard lock(window_mutex_); }  // the lingering thread is waiting, or sees the flag
    window_cv_.notify_one();
  }

  void drive_round() {
    std::lock_guard lock(drive_mutex_);
    round();
  }

  // One batch, one grace period. Single-threaded: the background thread, or a
  // caller holding drive_mutex_.
  void round() {
    rounds_started_.fetch_add(1, std::memory_order_acq_rel);  // pairs with the acquire in barrier()
    retired_node* batch = pending_.exchange(nullptr, std::memory_order_acquire);  // pairs with retire()
    if (batch != nullptr) grace_.synchronize();
    HOTSWAP_SCHEDULE_POINT("reclaimer: grace period over");
    std::uint64_t n = 0;
    while (batch != nullptr) {
      retired_node* next = batch->next;  // read first: reclaim may free or re-retire the node
      batch->reclaim(batch);
      batch = next;
      ++n;
    }
    reclaimed_.fetch_add(n, std::memory_order_relaxed);
    rounds_done_.fetch_add(1, std::memory_order_release);  // pairs with the acquire in barrier()
    rounds_done_.notify_all();
  }

  Grace& grace_;
  const std::chrono::nanoseconds window_;
  std::mutex window_mutex_;
  std::condition_variable window_cv_;
  alignas(64) std::atomic<retired_node*> pending_{nullptr};
  std::atomic<std::uint64_t> retired_{0};
  alignas(64) std::atomic<std::uint64_t> reclaimed_{0};
  std::atomic<std::uint64_t> rounds_started_{0};
  std::atomic<std::uint64_t> rounds_done_{0};
  std::atomic<std::uint32_t> wakeups_{0};
  std::atomic<bool> barrier_wanted_{false};
  std::atomic<bool> stop_{false};
  std::mutex drive_mutex_;
  std::thread thread_;  // last: starts after every field above is initialised
};

}  // namespace detail
}  // namespace hotswap
