// A deterministic scheduler for real threads running real kernel code.
//
// Only the thread holding the token runs. At every schedule point compiled
// into the kernel (detail/schedule_point.hpp) the running thread asks the
// scheduler who runs next; the choice comes from a seeded generator, so a
// seed names one interleaving and replays it exactly. Threads block on a
// condition variable while they wait, so the order is the only thing that
// varies between seeds.
//
// What this explores: interleavings of whole protocol steps under sequential
// consistency. What it does not: store-buffer reorderings (x86-TSO) — the
// Promela model in tests/model covers those.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace hotswap::explore {

class schedule {
 public:
  explicit schedule(std::uint64_t seed) : rng_(seed) {}

  /// Runs each body on its own thread, one step at a time, to completion.
  void run(std::vector<std::function<void()>> bodies) {
    const int n = static_cast<int>(bodies.size());
    done_.assign(static_cast<std::size_t>(n), false);
    std::vector<std::thread> threads;
    for (int id = 0; id < n; ++id)
      threads.emplace_back([this, id, body = std::move(bodies[static_cast<std::size_t>(id)])] {
        enter(id);
        body();
        leave(id);
      });
    {
      std::unique_lock lock(mutex_);
      arrived_cv_.wait(lock, [&] { return arrived_ == n; });
      running_ = pick_locked();
    }
    turn_cv_.notify_all();
    for (auto& t : threads) t.join();
  }

  /// Called at each schedule point by the running thread.
  void point(const char* where) {
    std::unique_lock lock(mutex_);
    ++steps_;
    if (trace_enabled_) trace_.push_back(std::to_string(current_id()) + ": " + where);
    const int next = pick_locked();
    if (next == current_id()) return;
    running_ = next;
    turn_cv_.notify_all();
    turn_cv_.wait(lock, [&] { return running_ == current_id(); });
  }

  static schedule* current() noexcept { return current_; }
  std::uint64_t steps() const noexcept { return steps_; }
  void enable_trace() { trace_enabled_ = true; }
  const std::vector<std::string>& trace() const noexcept { return trace_; }

 private:
  static int& current_id() noexcept {
    thread_local int id = -1;
    return id;
  }

  void enter(int id) {
    current_id() = id;
    current_ = this;
    std::unique_lock lock(mutex_);
    ++arrived_;
    arrived_cv_.notify_all();
    turn_cv_.wait(lock, [&] { return running_ == id; });
  }

  void leave(int id) {
    std::unique_lock lock(mutex_);
    done_[static_cast<std::size_t>(id)] = true;
    running_ = pick_locked();
    current_ = nullptr;
    turn_cv_.notify_all();
  }

  int pick_locked() {
    std::vector<int> ready;
    for (std::size_t i = 0; i < done_.size(); ++i)
      if (!done_[i]) ready.push_back(static_cast<int>(i));
    if (ready.empty()) return -1;
    return ready[std::uniform_int_distribution<std::size_t>(0, ready.size() - 1)(rng_)];
  }

  static inline thread_local schedule* current_ = nullptr;
  std::mutex mutex_;
  std::condition_variable turn_cv_, arrived_cv_;
  std::mt19937_64 rng_;
  std::vector<bool> done_;
  int arrived_ = 0;
  int running_ = -1;
  std::uint64_t steps_ = 0;
  bool trace_enabled_ = false;
  std::vector<std::string> trace_;
};

}  // namespace hotswap::explore
