// liburcu's memb flavour (membarrier-based; readers pay a compiler barrier)
// as a backend, in its two textbook writer styles:
//   urcu-memb-sync     exchange the pointer, synchronize_rcu(), free the old
//                      version: the swapper waits a grace period per swap.
//   urcu-memb-call-rcu exchange the pointer, call_rcu() the old version: the
//                      library's call_rcu thread frees it after a grace period.
//
// The pointer is a std::atomic<node*> loaded with acquire and swapped with
// exchange: the same instructions as rcu_dereference()/rcu_xchg_pointer() on
// x86-64. A pinned session is one read-side critical section spanning the
// session (RCU has no pins), so a long session delays every grace period.
#pragma once

#ifndef _LGPL_SOURCE
#define _LGPL_SOURCE  // inline read-side fast paths, as liburcu users get them
#endif
#include <urcu/urcu-memb.h>

#include <atomic>
#include <cstddef>
#include <string_view>
#include <utility>

#include "../backend.hpp"

namespace hotswap::stress {

/// Registers the calling thread with liburcu-memb for the object's lifetime.
class urcu_memb_thread {
 public:
  urcu_memb_thread() { urcu_memb_register_thread(); }
  ~urcu_memb_thread() { urcu_memb_unregister_thread(); }
  urcu_memb_thread(const urcu_memb_thread&) = delete;
  urcu_memb_thread& operator=(const urcu_memb_thread&) = delete;
};

template <class V, bool CallRcu>
class urcu_memb_backend {
  struct node;
  // call_rcu's link, in a standard-layout struct so that container_of is defined.
  struct link {
    rcu_head head;
    node* self;
  };
  struct node {
    node(V v, urcu_memb_backend* o) : value(std::move(v)), owner(o) { hook.self = this; }
    link hook{};
    V value;
    urcu_memb_backend* owner;
  };

 public:
  static constexpr std::string_view name = CallRcu ? "urcu-memb-call-rcu" : "urcu-memb-sync";
  static constexpr std::string_view description =
      CallRcu ? "liburcu memb: call_rcu() per swap (reclaimed on liburcu's call_rcu thread)"
              : "liburcu memb: synchronize_rcu() per swap, then free (the swapper waits)";
  // liburcu is not built with TSan: its grace periods synchronise in code the
  // sanitizer cannot see, so every reclaim would be reported as a race.
  static constexpr std::string_view tsan_note =
      "liburcu is not built with TSan, so TSan cannot see its grace periods and reports reclaims as races";

  urcu_memb_backend(const backend_config& cfg, run_probe& probe, V initial)
      : probe_(probe), cap_(CallRcu ? cfg.max_draining : 1) {
    current_.store(new node(std::move(initial), this), std::memory_order_release);
  }
  ~urcu_memb_backend() {
    drain();
    delete current_.load(std::memory_order_relaxed);
  }
  urcu_memb_backend(const urcu_memb_backend&) = delete;
  urcu_memb_backend& operator=(const urcu_memb_backend&) = delete;

  class session {
   public:
    session() = default;
    explicit session(const node* n) noexcept : node_(n) {}
    session(session&& o) noexcept : node_(std::exchange(o.node_, nullptr)) {}
    session& operator=(session&& o) noexcept {
      reset();
      node_ = std::exchange(o.node_, nullptr);
      return *this;
    }
    ~session() { reset(); }
    const V& operator*() const noexcept { return node_->value; }
    void reset() noexcept {
      if (node_ != nullptr) urcu_memb_read_unlock();
      node_ = nullptr;
    }

   private:
    const node* node_ = nullptr;
  };

  class caller {
   public:
    explicit caller(urcu_memb_backend& b) : b_(b) {}
    template <class F>
    void call(F&& f) {
      urcu_memb_read_lock();
      std::forward<F>(f)(b_.current_.load(std::memory_order_acquire)->value);  // pairs with publish's exchange
      urcu_memb_read_unlock();
    }
    session pin() {
      urcu_memb_read_lock();
      return session(b_.current_.load(std::memory_order_acquire));
    }

   private:
    urcu_memb_thread registration_;
    urcu_memb_backend& b_;
  };

  // call_rcu() must come from a registered thread.
  void attach_writer() {
    if constexpr (CallRcu) urcu_memb_register_thread();
  }
  void detach_writer() {
    if constexpr (CallRcu) urcu_memb_unregister_thread();
  }

  bool publish(V&& next) {
    if constexpr (CallRcu) {
      if (pending_.load(std::memory_order_relaxed) >= cap_) return false;
    }
    const std::uint64_t number = next.number;
    node* old = current_.exchange(new node(std::move(next), this), std::memory_order_acq_rel);
    if constexpr (CallRcu) {
      pending_.fetch_add(1, std::memory_order_relaxed);
      urcu_memb_call_rcu(&old->hook.head, &reclaim);
    } else {
      // The exchange above is sequenced before the grace period starts, so
      // `number` was serving at its start.
      pending_.fetch_add(1, std::memory_order_relaxed);
      const auto token = probe_.grace_begin(number);
      urcu_memb_synchronize_rcu();
      probe_.grace_end(token);
      grace_periods_.fetch_add(1, std::memory_order_relaxed);
      delete old;
      pending_.fetch_sub(1, std::memory_order_relaxed);
    }
    return true;
  }

  std::size_t backlog() const { return pending_.load(std::memory_order_relaxed); }
  std::size_t cap() const { return cap_; }
  backend_stats stats() const {
    return {CallRcu ? -1 : static_cast<std::int64_t>(grace_periods_.load(std::memory_order_relaxed)), -1};
  }

  void drain() {
    if constexpr (CallRcu) {
      urcu_memb_thread registration;
      urcu_memb_barrier();
    }
  }

 private:
  // On liburcu's call_rcu thread, after a grace period that began after the
  // call_rcu() of `old`, hence after the version that replaced it was published.
  static void reclaim(rcu_head* head) {
    node* n = caa_container_of(head, link, head)->self;
    urcu_memb_backend* self = n->owner;
    self->probe_.raise_floor(n->value.number + 1);
    delete n;
    self->pending_.fetch_sub(1, std::memory_order_relaxed);
  }

  run_probe& probe_;
  std::size_t cap_;
  alignas(64) std::atomic<node*> current_{nullptr};
  alignas(64) std::atomic<std::size_t> pending_{0};
  std::atomic<std::uint64_t> grace_periods_{0};
};

template <class V>
using urcu_memb_sync_backend = urcu_memb_backend<V, false>;
template <class V>
using urcu_memb_call_rcu_backend = urcu_memb_backend<V, true>;

}  // namespace hotswap::stress
