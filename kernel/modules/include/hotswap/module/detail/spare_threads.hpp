// Idle threads kept for reuse: a task starts on one of them, or on a new
// thread when none is idle.
//
// A swap used to start a new thread for each of startup, shutdown, dlclose
// and the unload worker, and a thread costs its clone, its stack and its
// exit. Here a thread that finished its task waits (up to `idle_for`) for
// the next one instead of exiting. A task that never returns (a hung hook)
// keeps its thread for good and costs nobody else: the next task finds
// another idle thread or gets a new one, so no task ever queues behind another.
//
// What may run here is the caller's decision (hook_runner.hpp): a thread that
// outlives its task carries whatever the task left on it until it exits, such
// as a plugin's thread_local destructors, which glibc runs at thread exit and
// for which it keeps that plugin mapped. Tasks that may leave such work get a
// dedicated thread instead.
//
//   spare_threads::instance().run(task);  // throws std::system_error if no thread can be made
//
// After fork() the child has none of the parent's threads: the pool forgets
// them and the tasks queued for them (fork_guard.hpp) and starts new threads
// as tasks come.
#pragma once

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <hotswap/thread_name.hpp>

#include "fork_guard.hpp"

namespace hotswap::modules::detail {

class spare_threads final : fork_participant {
 public:
  /// A thread idle this long exits: a burst of swaps leaves no threads behind for long.
  static constexpr std::chrono::seconds idle_for{5};

  /// Process-wide, never destroyed: idle threads wait on it until the process ends.
  static spare_threads& instance() {
    static spare_threads* pool = new spare_threads;
    return *pool;
  }

  /// Runs `task` on an idle thread, or on a new one if every thread is busy.
  /// `task` must not throw. Throws std::system_error if a thread is needed
  /// and cannot be made; `task` then never runs.
  void run(std::function<void()> task) {
    std::unique_lock lock(mutex_);
    queue_.push_back(std::move(task));
    if (queue_.size() <= idle_) {  // each idle thread takes one task: enough of them are waiting
      lock.unlock();
      wake_.notify_one();
      return;
    }
    try {
      start_thread();
      ++threads_;
    } catch (...) {
      // Still ours (no idle thread could have taken it): taken back, and
      // destroyed outside the lock (what it owns may itself start a task).
      task = std::move(queue_.back());
      queue_.pop_back();
      lock.unlock();
      throw;
    }
  }

  /// Threads alive (busy or idle) and idle now: for tests and statistics.
  std::pair<std::size_t, std::size_t> counts() {
    std::lock_guard lock(mutex_);
    return {threads_, idle_};
  }

 private:
  spare_threads() = default;

  // A pool thread may outlive every thread of the host's (idle for `idle_for`
  // after the host's last swap), so it never takes the host's asynchronous
  // signals: a SIGTERM the host has blocked while it exits must stay pending,
  // not meet the default action here. It is made with them blocked and
  // inherits the mask; faults (SIGSEGV, SIGBUS, ...) still reach it.
  void start_thread() {
    sigset_t blocked, saved;
    ::sigfillset(&blocked);
    for (int fault : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS}) ::sigdelset(&blocked, fault);
    ::pthread_sigmask(SIG_BLOCK, &blocked, &saved);
    try {
      std::thread([this] { work(); }).detach();
    } catch (...) {
      ::pthread_sigmask(SIG_SETMASK, &saved, nullptr);
      throw;
    }
    ::pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  }

  // An unload task starts from the domain's reclaimer, which runs under
  // SCHED_BATCH (domain_options::batch_reclaimer), and a new thread inherits
  // that. A pool thread serves every later task, startup hooks a swap waits
  // for among them, so it takes the process's policy (its main thread's) back.
  static void leave_inherited_batch() noexcept {
    if (::sched_getscheduler(0) != SCHED_BATCH || ::sched_getscheduler(::getpid()) != SCHED_OTHER) return;
    const sched_param none{};
    ::sched_setscheduler(0, SCHED_OTHER, &none);
  }

  void work() noexcept {
    hotswap::name_this_thread("hs-spare");
    leave_inherited_batch();
    std::unique_lock lock(mutex_);
    for (;;) {
      if (!queue_.empty()) {
        std::function<void()> task = std::move(queue_.front());
        queue_.pop_front();
        lock.unlock();
        task();
        task = nullptr;  // what it captured goes before the thread is idle again
        lock.lock();
        continue;
      }
      ++idle_;
      const bool woken = wake_.wait_for(lock, idle_for, [&] { return !queue_.empty(); });
      --idle_;
      if (!woken) break;
    }
    --threads_;
  }

  // fork(): no task is handed over while the child is made; in the child
  // neither the idle threads nor the busy ones exist. The fork takes this lock
  // after ld.so's: a thread holding it never waits for dlopen or dlclose.
  void lock_for_fork() override { mutex_.lock(); }
  void unlock_in_parent() override { mutex_.unlock(); }
  void reset_in_child() override {
    std::construct_at(&wake_);  // a parent thread may have been waiting on it: rebuilt, not destroyed
    threads_ = idle_ = 0;
    // Tasks handed to the parent's idle threads but not yet taken are the parent's to run.
    // Kept, never run nor destroyed: destroying one runs what it owns (an unload worker's
    // image would shut the parent's version down in the child, and start a hook here,
    // under this lock).
    static auto* parents_tasks = new std::vector<std::deque<std::function<void()>>>;
    parents_tasks->push_back(std::exchange(queue_, {}));
    mutex_.unlock();
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> queue_;  // guarded by mutex_
  std::size_t idle_ = 0;                     // threads waiting for a task; guarded by mutex_
  std::size_t threads_ = 0;                  // guarded by mutex_
};

}  // namespace hotswap::modules::detail
