// The heap block behind one version of a slot: the value, its identity, its
// pin counter and its place in the slot's list of live versions.
//
// Life of a block: published -> replaced (retired to the domain) -> after one
// grace period, park() its pins -> destroyed by the reclaimer when the last pin
// is gone. Before the value is destroyed the canary is poisoned, so a use after
// reclaim trips `alive()` in debug checks and in the stress rigs.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "../retire.hpp"
#include "../version.hpp"
#include "atomic.hpp"
#include "pin_counter.hpp"

namespace hotswap::detail {

struct version_base;

/// Writer-side bookkeeping of one slot, shared with its blocks so that a block
/// can outlive its slot (pinned after the slot is gone).
struct slot_books {
  detail::mutex mutex;                  // writers, the reclaimer and status pages
  std::vector<version_base*> live;      // guarded by mutex
  atomic<std::size_t> draining{0}; // replaced but not destroyed
  std::uint64_t last_number = 0;        // guarded by mutex
  // A writer waiting for room (slot::wait_for_room) sleeps on `destroyed`,
  // bumped by every destroy() after its `draining` decrement; destroy() makes
  // the wake syscall only while `waiters` says someone sleeps. SB.W1 (the
  // waiter's waiters increment, then its loads) and SB.D1 (the destroyer's
  // bump, then its waiters load) are seq_cst: a Dekker pair, so either the
  // destroyer sees the waiter and wakes it, or the waiter sees the bump and
  // the room, and does not sleep.
  atomic<std::uint32_t> destroyed{0};
  atomic<std::uint32_t> waiters{0};
};

struct version_base : retired_node {
  static constexpr std::uint64_t live_canary = 0x686f74737761702bULL;  // "hotswap+"
  static constexpr std::uint64_t dead_canary = 0xdeaddeaddeaddeadULL;

  version_base(version_info i, std::size_t shards, std::shared_ptr<slot_books> b)
      : info(std::move(i)), pins(shards), books(std::move(b)) {}
  virtual ~version_base() = default;  // the canary is poisoned by version_block, before the value goes

  bool alive() const noexcept { return canary.load(std::memory_order_relaxed) == live_canary; }

  /// The domain's callback for a replaced version: first call after its grace
  /// period parks the pins; destroy when none is left (possibly on a later call
  /// made when the last pin is released).
  static void reclaim_version(retired_node* node) {
    auto* v = static_cast<version_base*>(node);
    if (!v->parked) {
      v->parked = true;
      if (!v->pins.park()) return;  // the last pin's release re-retires us
    }
    v->destroy();
  }

  void destroy() {
    std::shared_ptr<slot_books> b = std::move(books);
    {
      std::lock_guard lock(b->mutex);
      std::erase(b->live, this);
    }
    b->draining.fetch_sub(1, std::memory_order_relaxed);  // ordered before SB.D1's bump, which releases it
    delete this;
    b->destroyed.fetch_add(1, std::memory_order_seq_cst);  // SB.D1: pairs with SB.W1 (release: the room above)
    if (b->waiters.load(std::memory_order_seq_cst) != 0) futex_wake_all(b->destroyed);  // SB.D1's second half
  }

  version_info info;
  atomic<std::uint64_t> canary{live_canary};
  bool parked = false;  // reclaimer only
  pin_counter pins;
  std::shared_ptr<slot_books> books;
};

template <class T>
struct version_block final : version_base {
  template <class... Args>
  version_block(version_info i, std::size_t shards, std::shared_ptr<slot_books> b, Args&&... args)
      : version_base(std::move(i), shards, std::move(b)), value(std::forward<Args>(args)...) {
    reclaim = &version_base::reclaim_version;
  }
  ~version_block() override { canary.store(dead_canary, std::memory_order_relaxed); }

  T value;
};

}  // namespace hotswap::detail
