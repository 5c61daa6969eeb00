// A deliberately broken backend, to show that the rig's checks catch real
// bugs (CTest stress.detects_broken_backend). Never part of `all`.
//
// It frees the replaced version right after the exchange, with no grace
// period (callers still inside it read a destroyed, poisoned version:
// dead_version), and raises the age floor before the new version is visible
// (callers that read the floor, then the old pointer, see a version older than
// the floor: stale_version). Reading a destroyed object is undefined
// behaviour; to make the detection certain rather than lucky, the destructor
// runs at once but the storage is kept in a quarantine ring for the next
// `quarantine` swaps, so the allocator cannot hand the block to the next
// version (which would repaint a live canary) while a caller still reads it.
// Not run under the sanitizers.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <new>
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
    current_.store(make(std::move(initial)), std::memory_order_release);
  }
  ~broken_backend() {
    node* last = current_.load(std::memory_order_relaxed);
    std::destroy_at(last);
    ::operator delete(last);
    for (node* n : quarantine_) ::operator delete(n);  // already destroyed
  }
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
    node* old = current_.exchange(make(std::move(next)), std::memory_order_acq_rel);
    std::destroy_at(old);  // BUG: no grace period
    const std::lock_guard lock(quarantine_mutex_);
    node*& slot = quarantine_[swaps_++ % quarantine_.size()];
    ::operator delete(slot);  // storage destroyed `quarantine` swaps ago (nullptr at first)
    slot = old;
    return true;
  }

  std::size_t backlog() const { return 0; }
  std::size_t cap() const { return 0; }
  backend_stats stats() const { return {}; }
  void drain() {}

 private:
  static node* make(V&& value) { return ::new (::operator new(sizeof(node))) node{std::move(value)}; }

  run_probe& probe_;
  alignas(64) std::atomic<node*> current_{nullptr};
  std::mutex quarantine_mutex_;  // swappers may be several
  std::array<node*, 4096> quarantine_{};
  std::size_t swaps_ = 0;
};

}  // namespace hotswap::stress
