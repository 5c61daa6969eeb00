// std::atomic<std::shared_ptr<const V>>: the standard library's answer.
// Every call copies the shared_ptr (in libstdc++ 12 a spin lock in the atomic
// plus a reference-count increment and decrement), so callers write shared
// cache lines; the last holder of a replaced version destroys it, which may be
// a caller. There is no grace period: the age floor is the newest version
// whose store has returned (a load that starts after it must see it).
#pragma once

#include <atomic>
#include <memory>
#include <string_view>
#include <utility>

#include "../backend.hpp"

namespace hotswap::stress {

template <class V>
class atomic_shared_ptr_backend {
 public:
  static constexpr std::string_view name = "atomic-shared-ptr";
  static constexpr std::string_view description =
      "std::atomic<std::shared_ptr<const V>>: load per call, store per swap";
  // libstdc++ 12's load() releases its internal spin lock with
  // memory_order_relaxed, so TSan reports the pointer read against the next
  // store as a race (google/sanitizers#1558; benign on x86-64).
  static constexpr std::string_view tsan_note =
      "libstdc++ 12's atomic<shared_ptr>::load() unlocks with memory_order_relaxed which TSan reports as a race (google/sanitizers#1558)";

  atomic_shared_ptr_backend(const backend_config&, run_probe& probe, V initial) : probe_(probe) {
    current_.store(std::shared_ptr<const V>(std::make_shared<V>(std::move(initial))), std::memory_order_release);
  }

  class session {
   public:
    session() = default;
    explicit session(std::shared_ptr<const V> p) noexcept : p_(std::move(p)) {}
    const V& operator*() const noexcept { return *p_; }
    void reset() noexcept { p_.reset(); }

   private:
    std::shared_ptr<const V> p_;
  };

  class caller {
   public:
    explicit caller(atomic_shared_ptr_backend& b) : b_(b) {}
    template <class F>
    void call(F&& f) {
      const std::shared_ptr<const V> p = b_.current_.load(std::memory_order_acquire);  // pairs with publish
      std::forward<F>(f)(*p);
    }
    session pin() { return session(b_.current_.load(std::memory_order_acquire)); }

   private:
    atomic_shared_ptr_backend& b_;
  };

  void attach_writer() {}
  void detach_writer() {}

  bool publish(V&& next) {
    const std::uint64_t number = next.number;
    current_.store(std::shared_ptr<const V>(std::make_shared<V>(std::move(next))), std::memory_order_release);
    probe_.raise_floor(number);
    return true;
  }

  std::size_t backlog() const { return probe_.replaced_alive(); }
  std::size_t cap() const { return 0; }
  backend_stats stats() const { return {}; }
  void drain() {}

 private:
  run_probe& probe_;
  alignas(64) std::atomic<std::shared_ptr<const V>> current_;
};

}  // namespace hotswap::stress
