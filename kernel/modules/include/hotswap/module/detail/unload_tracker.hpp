// Counts unloads running on worker threads, so that someone can wait for
// them. Each loader has its own (a registry's destructor waits for its own
// loader's unloads only, never another's); one more counts every unload in
// the process, for hosts and tests that want them all finished
// (hotswap::modules::wait_for_unloads). A forked child starts with every
// count at zero: the workers were not copied (fork_guard.hpp).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <new>

#include "fork_guard.hpp"

namespace hotswap::modules::detail {

class unload_tracker final : public fork_participant {
 public:
  unload_tracker() = default;
  ~unload_tracker() = default;

  void begin() {
    std::lock_guard lock(mutex_);
    ++pending_;
  }
  void end() {
    std::lock_guard lock(mutex_);
    if (--pending_ == 0) idle_.notify_all();
  }
  /// Until every unload begun so far has ended. False on timeout.
  bool wait(std::chrono::nanoseconds timeout) {
    std::unique_lock lock(mutex_);
    return idle_.wait_for(lock, timeout, [&] { return pending_ == 0; });
  }

  /// Every unload of every loader in the process. Never destroyed: a detached
  /// worker may still be ending its count while the process runs its exit handlers.
  static unload_tracker& process_wide() {
    static unload_tracker& t = *new unload_tracker;
    return t;
  }

 private:
  void lock_for_fork() override { mutex_.lock(); }
  void unlock_in_parent() override { mutex_.unlock(); }
  void reset_in_child() override {
    pending_ = 0;  // the workers counted here stayed in the parent
    // A fresh condition variable: the copy may count waiters the child does not have, and
    // glibc's notify and destroy would wait for them. (Overwritten, not destroyed.)
    ::new (static_cast<void*>(&idle_)) std::condition_variable();
    mutex_.unlock();
  }

  std::mutex mutex_;
  std::condition_variable idle_;
  std::size_t pending_ = 0;  // guarded by mutex_
};

}  // namespace hotswap::modules::detail
