// A value that flags its own destruction and poisons itself, so a use after
// reclaim fails loudly: the canary check in plain builds, ASan in sanitizer builds.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <utility>

namespace hotswap::testing {

struct tracked {
  static constexpr std::uint64_t live = 0x11fe11fe11fe11feULL;
  static constexpr std::uint64_t dead = 0xdeadbeefdeadbeefULL;

  struct counters {
    std::atomic<std::uint64_t> created{0};
    std::atomic<std::uint64_t> destroyed{0};
    std::atomic<std::uint64_t> destroyed_on_wrong_thread{0};
    std::thread::id callers_must_not_destroy;  // set by tests that check it
  };

  tracked(std::uint64_t v, counters& c) : value(v), stats(&c) { stats->created.fetch_add(1); }
  // A move transfers ownership: the moved-from shell counts for nothing.
  tracked(tracked&& o) noexcept : value(o.value), stats(std::exchange(o.stats, nullptr)) {}
  tracked(const tracked& o) : tracked(o.value, *o.stats) {}
  ~tracked() {
    canary.store(dead);
    if (stats == nullptr) return;
    if (std::this_thread::get_id() == stats->callers_must_not_destroy) stats->destroyed_on_wrong_thread.fetch_add(1);
    stats->destroyed.fetch_add(1);
  }

  bool alive() const { return canary.load(std::memory_order_relaxed) == live; }

  std::uint64_t value;
  counters* stats;
  std::atomic<std::uint64_t> canary{live};
};

}  // namespace hotswap::testing
