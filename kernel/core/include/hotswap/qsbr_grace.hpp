// Quiescent-state-based reclamation (QSBR): read sections that cost nothing.
//
// For hosts with a loop. A registered thread is "online": it may hold
// references between any two points of its own choosing, and it tells the
// domain when it holds none by calling quiescent() (an event loop's
// iteration, a worker's job boundary). lock()/unlock() then only count
// nesting for the domain's misuse checks, behind a compiler barrier: no
// shared word, no fence. Around a blocking call a thread goes offline()
// (`qsbr_grace::offline_scope`), so that its sleep does not hold reclamation.
//
// A writer bumps the epoch (QS.A) and waits until every online record shows it.
// quiescent() loads the epoch with acquire (QS.B: pairs with QS.A, so the thread
// sees what was published before) and stores it with release (QS.Q: pairs with
// the writer's acquire poll QS.D, so the thread's earlier reads of old versions
// happen before reclamation). A registered thread that never announces holds
// reclamation only: publishes go on, the stall callback names it.
//
// The writer sleeps on a futex when polling has not helped, woken by the
// thread it waits for (the shape of epoch_grace, see there): it raises the
// record's wake_wanted_ (QS.F), fences, re-checks, sleeps; quiescent() and
// offline() store (QS.Q), fence, and test the flag (QS.L). Both sides fence (Dekker),
// so no wake-up is lost and no membarrier is needed: quiescent() runs once per
// many calls, where one fence is noise.
//
// Misuse the policy cannot see: calling quiescent() while holding a reference
// obtained earlier (a raw pointer kept across it) is a use-after-free in the
// making, exactly as in liburcu's QSBR flavour.
#pragma once

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <utility>
#include <vector>

#include "detail/assert_debug.hpp"
#include "detail/atomic.hpp"
#include "detail/schedule_point.hpp"
#include "detail/thread_records.hpp"
#include "domain.hpp"  // basic_domain
#include "grace_stats.hpp"
#include "options.hpp"

namespace hotswap {

class qsbr_grace {
  static constexpr std::uint64_t offline_state = 0;  // epochs start at 1
  static constexpr std::uint64_t first_epoch = 1;
  // How long a grace period polls before it sleeps until woken: a busy thread
  // announcing every 1,000 calls of a few ns does so well within it.
  static constexpr std::chrono::microseconds poll_for{20};

 public:
  class alignas(64) reader : public detail::record_links {
   public:
    // A compiler barrier on each side keeps the section's loads between them,
    // so quiescent() calls the compiler moves cannot overtake them either.
    [[gnu::always_inline]] void lock() noexcept {
      ++nesting_;
      detail::compiler_fence();  // compiler only
    }
    [[gnu::always_inline]] void unlock() noexcept {
      detail::compiler_fence();  // compiler only
      HOTSWAP_ASSERT(nesting_ != 0, "hotswap: unlock() without a matching lock()");
      --nesting_;
    }
    std::uint32_t nesting() const noexcept { return nesting_; }

    /// This thread holds no reference obtained before this point. Cheap when
    /// no grace period is waiting (two loads and a compare).
    void quiescent() noexcept {
      const std::uint64_t e = epoch_->load(std::memory_order_acquire);  // QS.B: pairs with QS.A
      if (e == state_.load(std::memory_order_relaxed)) return;          // nothing new to announce
      announce(e);
    }

    /// Holds no references until online(): grace periods stop waiting for it.
    void offline() noexcept { announce(offline_state); }
    /// Back from offline(): references may be taken again.
    void online() noexcept {
      // QS.B as in quiescent(); the fence pairs with the writer's fence after QS.A
      // (Dekker): either the writer sees us online, or our later loads see
      // what it published before QS.A.
      state_.store(epoch_->load(std::memory_order_acquire), std::memory_order_relaxed);
      detail::compiler_fence();
      if (!detail::weakened(detail::mutant::qsbr_no_online_fence)) detail::thread_fence(std::memory_order_seq_cst);
    }
    bool is_online() const noexcept { return state_.load(std::memory_order_relaxed) != offline_state; }

   private:
    friend class qsbr_grace;
    friend class detail::record_list<reader>;

    void announce(std::uint64_t value) noexcept {
      HOTSWAP_SCHEDULE_POINT("qsbr: before announce");
      state_.store(value, detail::weakened(detail::mutant::qsbr_announce_relaxed) ? std::memory_order_relaxed
                                                                                 : std::memory_order_release);  // QS.Q: pairs with QS.D
      // Pairs with the writer's fence after QS.F (Dekker): either it sees QS.Q, or
      // we see its flag below and wake it.
      detail::thread_fence(std::memory_order_seq_cst);
      if (wake_wanted_.load(std::memory_order_relaxed) != 0) [[unlikely]] {  // QS.L
        wake_wanted_.store(0, std::memory_order_relaxed);
        wake_->fetch_add(1, std::memory_order_release);  // QS.H: pairs with QS.G
        detail::futex_wake_all(*wake_);
      }
    }

    void on_claim() noexcept {
      tid_.store(static_cast<pid_t>(::syscall(SYS_gettid)), std::memory_order_relaxed);
      wake_wanted_.store(0, std::memory_order_relaxed);
      nesting_ = 0;
      online();  // a registered thread starts online, as in liburcu
    }
    // A thread giving its record back (exit, detach()) goes offline through
    // announce(), so a grace period sleeping on it is woken (QS.L) rather than
    // left asleep until its stall limit (tests/relacy: qsbr_exit_without_wake).
    void on_release() noexcept {
      if (detail::weakened(detail::mutant::qsbr_exit_without_wake)) state_.store(offline_state, std::memory_order_release);
      else announce(offline_state);
    }

    detail::atomic<std::uint64_t> state_{offline_state};  // last announced epoch; 0 = offline
    detail::atomic<std::uint32_t> wake_wanted_{0};         // QS.F: raised by a sleeping writer
    std::uint32_t nesting_ = 0;                         // owner thread only
    const detail::atomic<std::uint64_t>* epoch_ = nullptr;
    detail::atomic<std::uint32_t>* wake_ = nullptr;
    detail::atomic<pid_t> tid_{0};
  };

  /// Takes the calling thread offline for a scope (a blocking call), if it is
  /// registered and online; restores it after. Move-only.
  class offline_scope {
   public:
    explicit offline_scope(reader* r) noexcept : r_(r != nullptr && r->is_online() ? r : nullptr) {
      if (r_ != nullptr) r_->offline();
    }
    offline_scope(offline_scope&& o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
    offline_scope& operator=(offline_scope&&) = delete;
    ~offline_scope() {
      if (r_ != nullptr) r_->online();
    }

   private:
    reader* r_;
  };

  explicit qsbr_grace(const domain_options& opt) : options_(opt) {}

  reader& this_thread_reader() {
    return readers_.this_thread([this](reader& r) {
      r.epoch_ = &epoch_;
      r.wake_ = &wake_;
    });
  }
  reader* this_thread_reader_if_any() noexcept { return readers_.this_thread_if_any(); }
  void detach_this_thread() noexcept { readers_.detach_this_thread(); }

  /// Whether `r` is a record of this policy (the domain's debug check).
  bool owns(const reader& r) const noexcept { return r.epoch_ == &epoch_; }

  /// The calling thread offline while it waits for reclamation (basic_domain
  /// uses it in barrier() and its destructor).
  offline_scope this_thread_offline_scope() noexcept { return offline_scope(this_thread_reader_if_any()); }

  /// Waits until every online thread announced a quiescent state after the
  /// call began. The calling thread holds no reference here (the domain
  /// checked its nesting), so it counts as quiescent.
  void synchronize() {
    const offline_scope self(this_thread_reader_if_any());
    // QS.A: pairs with QS.B; then a fence that pairs with online()'s.
    const std::uint64_t target = epoch_.fetch_add(1, std::memory_order_seq_cst) + 1;
    detail::thread_fence(std::memory_order_seq_cst);
    grace_periods_.fetch_add(1, std::memory_order_relaxed);

    std::vector<reader*> pending;
    readers_.for_each([&](reader& r) {
      // Acquire pairs with record_list::release(), as in epoch_grace.
      if (r.in_use.load(std::memory_order_acquire) && !done(r, target)) pending.push_back(&r);
    });
    const auto start = detail::clock::now();
    bool stall_reported = false;
    for (unsigned round = 0; !pending.empty(); ++round) {
      std::erase_if(pending, [&](reader* r) { return done(*r, target); });
      if (pending.empty()) return;
      const auto waited = detail::clock::now() - start;
      if (!stall_reported && waited >= options_.stall_threshold) {
        stall_reported = true;
        for (reader* r : pending) {
          stalls_.fetch_add(1, std::memory_order_relaxed);
          if (options_.on_stall) options_.on_stall({r->tid_.load(std::memory_order_relaxed), waited});
        }
      }
      if (waited < poll_for || round < detail::spin_polls) {
        // A busy thread announces within its next N calls: poll it (no
        // yield: on a loaded machine one costs milliseconds).
        detail::cpu_relax();
        continue;
      }
      sleep_until_woken(pending, target, stall_reported ? options_.stall_threshold
                                                        : options_.stall_threshold - waited);
    }
  }

  grace_stats stats() const noexcept {
    return {grace_periods_.load(std::memory_order_relaxed), 0, stalls_.load(std::memory_order_relaxed),
            sleeps_.load(std::memory_order_relaxed)};
  }

 private:
  // QS.D: acquire pairs with QS.Q (and with on_release()).
  static bool done(const reader& r, std::uint64_t target) noexcept {
    const std::uint64_t s = r.state_.load(std::memory_order_acquire);
    return s == offline_state || s >= target;
  }

  void sleep_until_woken(std::vector<reader*>& pending, std::uint64_t target, std::chrono::nanoseconds limit) {
    const std::uint32_t seq = wake_.load(std::memory_order_acquire);  // QS.G: pairs with QS.H
    for (reader* r : pending) r->wake_wanted_.store(1, std::memory_order_relaxed);  // QS.F
    if (!detail::weakened(detail::mutant::qsbr_no_wake_fence))
      detail::thread_fence(std::memory_order_seq_cst);  // QS.F before the re-check; pairs with announce()'s fence
    std::erase_if(pending, [&](reader* r) { return done(*r, target); });
    if (pending.empty()) return;
    detail::futex_wait(wake_, seq, std::max<std::chrono::nanoseconds>(limit, std::chrono::microseconds(1)));
    sleeps_.fetch_add(1, std::memory_order_relaxed);
  }

  domain_options options_;
  alignas(64) detail::atomic<std::uint64_t> epoch_{first_epoch};
  alignas(64) detail::thread_readers<reader> readers_;
  detail::atomic<std::uint64_t> grace_periods_{0};
  detail::atomic<std::uint64_t> stalls_{0};
  detail::atomic<std::uint64_t> sleeps_{0};
  alignas(64) detail::atomic<std::uint32_t> wake_{0};  // futex word, bumped by each waking reader (QS.H)
};

/// A domain whose readers announce quiescent states from their own loop.
using qsbr_domain = basic_domain<qsbr_grace>;

}  // namespace hotswap
