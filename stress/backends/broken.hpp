// A deliberately broken backend, to show that the rig's checks catch real
// bugs (CTest stress.detects_broken_backend). Never part of `all`.
//
// It frees the replaced version right after the exchange, with no grace
// period (callers still inside it read freed, poisoned memory: dead_version),
// and raises the age floor before the new version is visible (callers that
// read the floor, then the old pointer, see a version older than the floor:
// stale_version). Reading freed memory is undefined behaviour; the version's
// destructor poisons the canary first, and a small freed block stays mapped,
// so a plain build reads the poison. Not run under the sanitizers.
#pragma once

#include <atomic>
#include <string_view>
#include <utility>

#include "../backend.hpp"

namespace hotswap::stress {

template <class V>
class broken_backend {
  struct node {
    V value;
  };

 public:
  static constexpr std::string_view name = "broken-no-grace";
  static constexpr std::string_view description =
      "SELF-TEST, deliberately wrong: frees without a grace period, raises the floor too early";
  static constexpr std::string_view tsan_note = "deliberately racy";
  static constexpr bool self_test = true;

  broken_backend(const backend_config&, run_probe& probe, V initial) : probe_(probe) {
    current_.store(new node{std::move(initial)}, std::memory_order_release);
  }
  ~broken_backend() { delete current_.load(std::memory_order_relaxed); }
  broken_backend(const broken_backend&) = delete;
  broken_backend& operator=(const broken_backend&) = delete;

  class session {
   public:
    explicit session(const node* n) noexcept : node_(n) {}
    const V& operator*() const noexcept { return node_->value; }
    void reset() noexcept {}

   private:
    const node* node_;
  };

  class caller {
   public:
    explicit caller(broken_backend& b) : b_(b) {}
    template <class F>
    void call(F&& f) {
      std::forward<F>(f)(b_.current_.load(std::memory_order_acquire)->value);
    }
    session pin() { return session(b_.current_.load(std::memory_order_acquire)); }

   private:
    broken_backend& b_;
  };

  void attach_writer() {}
  void detach_writer() {}

  bool publish(V&& next) {
    probe_.raise_floor(next.number);  // BUG: before the version is visible
    node* old = current_.exchange(new node{std::move(next)}, std::memory_order_acq_rel);
    delete old;  // BUG: no grace period
    return true;
  }

  std::size_t backlog() const { return 0; }
  std::size_t cap() const { return 0; }
  backend_stats stats() const { return {}; }
  void drain() {}

 private:
  run_probe& probe_;
  alignas(64) std::atomic<node*> current_{nullptr};
};

}  // namespace hotswap::stress
