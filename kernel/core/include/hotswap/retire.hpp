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

#include <sched.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>

#include "detail/atomic.hpp"
#include "detail/fatal.hpp"
#include "detail/fork_handlers.hpp"
#include "detail/schedule_point.hpp"
#include "options.hpp"
#include "thread_name.hpp"

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
class reclaimer final : fork_participant {
 public:
  reclaimer(Grace& grace, reclaim_mode mode, std::chrono::nanoseconds window, bool batch)
      : grace_(grace), window_(window), background_(mode == reclaim_mode::background) {
    if (background_) thread_ = std::thread([this, batch] {
      if (batch) run_as_batch();
      run();
    });
    if constexpr (!model_checked) fork_registry::add(*this);
  }
  reclaimer(const reclaimer&) = delete;
  reclaimer& operator=(const reclaimer&) = delete;

  /// Drains everything retired so far, then stops the background thread.
  ~reclaimer() {
    if constexpr (!model_checked) fork_registry::remove(*this);
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
      // RT.R1 (acq_rel). Release pairs with RT.R2's acquire: the node's fields (and
      // the object it guards) are complete before the reclaimer sees it.
      // Acquire pairs with RT.R2's release: if a round's take came first, its
      // rounds_started_ increment happens before our caller's barrier() reads
      // RT.R3, so barrier() waits for a later round (no store-buffering shape).
    } while (!pending_.compare_exchange_weak(head, node, store_buffering() ? std::memory_order_release : std::memory_order_acq_rel,
                                             std::memory_order_relaxed));
    if (background_ && head == nullptr) wake();
  }

  /// Runs one round on the calling thread if anything is pending. Returns
  /// whether it ran deleters. For reclaim_mode::manual hosts. From inside a
  /// deleter it does nothing and returns false (that round is still running).
  bool poll() {
    if (in_deleter()) return false;
    if (pending_.load(std::memory_order_acquire) == nullptr) return false;  // RT.R1's release: see round()
    drive_round();
    return true;
  }

  /// Waits until every retire() that happened before the call has run its
  /// deleter. Throws std::logic_error from inside a deleter: the round running
  /// it cannot finish while it waits.
  void barrier() {
    if (in_deleter()) throw std::logic_error("hotswap: barrier() called from a deleter; it would wait for itself");
    // RT.R3: every retire() that happened before this call either was taken by a
    // round numbered <= seen (RT.R1/RT.R2 above), or will be taken by a later one,
    // and rounds run one at a time, so round seen + 1 finishing covers both.
    // Relaxed: what orders it after RT.R2 is RT.R1's acquire, then read-read coherence.
    const std::uint64_t seen =
        rounds_started_.load(store_buffering() ? std::memory_order_acquire : std::memory_order_relaxed);
    if (!background_) {
      while (rounds_done_.load(std::memory_order_acquire) <= seen) drive_round();  // RT.R4
      return;
    }
    barrier_wanted_.store(true, std::memory_order_relaxed);
    wake();
    cut_window_short();
    std::uint64_t done = rounds_done_.load(std::memory_order_acquire);
    while (done <= seen) {
      rounds_done_.wait(done, std::memory_order_acquire);  // RT.R4
      done = rounds_done_.load(std::memory_order_acquire);  // RT.R4: the round's deleters happen before we return
    }
  }

  bool background() const noexcept { return background_; }

  std::size_t backlog() const noexcept {
    return static_cast<std::size_t>(retired_.load(std::memory_order_relaxed) -
                                    reclaimed_.load(std::memory_order_relaxed));
  }

  reclaim_stats stats() const noexcept {
    return {retired_.load(std::memory_order_relaxed), reclaimed_.load(std::memory_order_relaxed),
            rounds_done_.load(std::memory_order_relaxed)};
  }

 private:
  void wake() noexcept {
    wakeups_.fetch_add(1, std::memory_order_release);  // pairs with the acquire load in run()
    wakeups_.notify_one();
  }

  // domain_options::batch_reclaimer. Only from SCHED_OTHER: a host's real-time
  // or idle policy stays. A refusal (a seccomp filter) leaves the policy as it was.
  static void run_as_batch() noexcept {
    if constexpr (!model_checked) {
      if (::sched_getscheduler(0) != SCHED_OTHER) return;
      const sched_param none{};
      ::sched_setscheduler(0, SCHED_BATCH, &none);
    }
  }

  void run() {
    if constexpr (!model_checked) name_this_thread("hs-reclaim");
    for (;;) {
      const std::uint32_t seen = wakeups_.load(std::memory_order_acquire);
      const bool wanted = barrier_wanted_.exchange(false, std::memory_order_relaxed);
      if (pending_.load(std::memory_order_acquire) != nullptr || wanted) {
        if (!wanted) linger();
        drive_round();
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

  // Rounds run one at a time, whoever drives them (the background thread,
  // poll(), barrier() in manual mode, the destructor): barrier() counts on it.
  void drive_round() {
    std::lock_guard lock(drive_mutex_);
    round();
  }

  bool in_deleter() const noexcept {
    // Relaxed: only this thread ever stores its own id here.
    return deleting_on_.load(std::memory_order_relaxed) == detail::this_thread_id();
  }

  // One batch, one grace period. Caller holds drive_mutex_. A deleter that
  // throws terminates the process: the rest of the batch could be neither
  // run nor given back.
  void round() noexcept {
    rounds_started_.fetch_add(1, store_buffering() ? std::memory_order_acq_rel
                                                 : std::memory_order_relaxed);  // ordered before RT.R2 by RT.R2's release
    // RT.R2 (acq_rel): acquire pairs with RT.R1's release (the nodes are complete);
    // release pairs with RT.R1's acquire (see retire()).
    retired_node* batch =
        pending_.exchange(nullptr, store_buffering() ? std::memory_order_acquire : std::memory_order_acq_rel);
    if (batch != nullptr) synchronize_or_die();
    HOTSWAP_SCHEDULE_POINT("reclaimer: grace period over");
    deleting_on_.store(detail::this_thread_id(), std::memory_order_relaxed);
    std::uint64_t n = 0;
    try {
      while (batch != nullptr) {
        retired_node* next = batch->next;  // read first: reclaim may free or re-retire the node
        batch->reclaim(batch);
        batch = next;
        ++n;
      }
    } catch (...) {
      fatal("hotswap: a deleter passed to retire() threw; deleters must not throw");
    }
    deleting_on_.store(thread_id{}, std::memory_order_relaxed);
    reclaimed_.fetch_add(n, std::memory_order_relaxed);
    rounds_done_.fetch_add(1, std::memory_order_release);  // RT.R4: pairs with barrier()'s acquire loads
    rounds_done_.notify_all();
  }

  void synchronize_or_die() noexcept {
    try {
      grace_.synchronize();
    } catch (...) {
      fatal("hotswap: a grace period failed inside the reclaimer (out of memory?)");
    }
  }

  // fork(): see detail/fork_handlers.hpp. The child's copy of the background
  // thread does not exist; its std::thread and the mutex and condition
  // variable it may have been using are rebuilt in place, not destroyed.
  void before_fork() noexcept override {
    drive_mutex_.lock();  // no round in flight, none starts
    window_mutex_.lock();
  }
  void after_fork_in_parent() noexcept override {
    window_mutex_.unlock();
    drive_mutex_.unlock();
  }
  void after_fork_in_child() noexcept override {
    if constexpr (requires { grace_.after_fork_in_child(); }) grace_.after_fork_in_child();
    if (background_) {
      std::construct_at(&window_mutex_);
      std::construct_at(&window_cv_);
      std::construct_at(&thread_);  // the parent's thread is not ours to join
    } else {
      window_mutex_.unlock();
    }
    drive_mutex_.unlock();
    if (background_) {
      try {
        thread_ = std::thread([this] { run(); });
      } catch (...) {
        fatal("hotswap: could not start the reclaimer thread in a child after fork()");
      }
    }
  }

  // The shape before RT.R1/RT.R2 were acq_rel (a model-checker mutant; false in every build).
  static bool store_buffering() noexcept { return weakened(mutant::retire_store_buffering); }

  Grace& grace_;
  const std::chrono::nanoseconds window_;
  std::mutex window_mutex_;
  std::condition_variable window_cv_;
  alignas(64) detail::atomic<retired_node*> pending_{nullptr};
  detail::atomic<std::uint64_t> retired_{0};
  alignas(64) detail::atomic<std::uint64_t> reclaimed_{0};
  detail::atomic<std::uint64_t> rounds_started_{0};
  detail::atomic<std::uint64_t> rounds_done_{0};
  detail::atomic<std::uint32_t> wakeups_{0};
  detail::atomic<bool> barrier_wanted_{false};
  detail::atomic<bool> stop_{false};
  detail::atomic<thread_id> deleting_on_{};  // the thread running deleters, if any
  const bool background_;
  detail::mutex drive_mutex_;
  std::thread thread_;  // last: starts after every field above is initialised
};

}  // namespace detail
}  // namespace hotswap
