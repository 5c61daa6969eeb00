// The default grace period: epoch announce + lazy membarrier.
//
// A reader entering its outermost section loads the global epoch and stores
// `epoch | active` into its own cache line; leaving, it stores `epoch`. No
// read-modify-write, no fence, no write to a line another thread writes.
//
// A writer that wants every section older than "now" to end bumps the epoch by
// 2 and watches the records:
//   * a record showing the new epoch (active or not) is done: that reader
//     loaded the new epoch with acquire, so it sees everything published first;
//   * a busy reader shows the new epoch within one section, typically
//     nanoseconds, so busy callers cost no interruption at all;
//   * a record still showing an old epoch after `membarrier_after` belongs to
//     an idle or blocked thread. Its `inactive` value cannot be trusted yet: a
//     newer lock-time store may still sit in that CPU's store buffer while the
//     reader already loaded the old pointer. One membarrier() drains every
//     store buffer; after it, `inactive` is final and `active` is waited out.
// Without membarrier (grace_mode::fence) readers fence after the lock-time
// store instead, and the writer trusts `inactive` at once.
//
// The ordering pairs, named where they are used (each names its partner):
//   EG.A  writer: epoch fetch_add (seq_cst)        pairs with EG.B
//   EG.B  reader: epoch load (acquire)             sees EG.A: what was published first
//   EG.C  reader: announcement store (release)     read by EG.D
//   EG.D  writer: record state load (acquire)      pairs with EG.C, EG.E and TR.G
//   EG.E  reader: leaving store (release)          the section's reads happen before EG.D
//   EG.F  seq_cst fences: the writer's after EG.A, the fence-mode reader's after EG.C,
//      and the claim fence after a thread claims or links a record
//      (detail/thread_records.hpp); any two of them form a Dekker pair
//   TR.G  record released: in_use store (release)  pairs with the writer's in_use load
//   EG.M  membarrier(): a full barrier on every running thread, paired with the
//      reader's compiler barrier after EG.C
//   EG.W1-EG.W4  the sleeping wait, below: the writer asks a reader to wake it (EG.W1),
//      reads the futex word (EG.W2); the waking reader bumps it (EG.W3) after testing
//      its own flag (EG.W4)
// The records' own list (TR.L1/TR.L2) is in detail/thread_records.hpp. The protocol
// is model-checked under x86-TSO in tests/model/ (spin) and under the C++
// memory model in tests/relacy/, with mutants that weaken one step and must fail.
//
// A reader still inside an old section after that is either running a long
// section or preempted inside a short one. Spinning cannot help the second
// (on a full machine it takes the CPU the reader needs to finish), so the
// writer sleeps on a futex and the reader wakes it (liburcu's gp_futex shape,
// with the flag per reader): the writer raises `wake_wanted_` in the records
// it waits for (EG.W1), and a reader leaving its outermost section stores its
// state (EG.E), then tests its own wake_wanted_ (EG.W4) and wakes the writer if set.
// The common unlock stays a store plus a test of a word in its own line.
//   No lost wake-up (EG.E;EG.W4 in the reader against EG.W1;EG.M;recheck in the writer, the
//   Dekker shape): the writer's membarrier EG.M runs a full fence on the reader's
//   CPU (or the reader passes one at its next context switch). If EG.W4 comes
//   after that fence, EG.W4 sees EG.W1 and the reader wakes us; if before, so is EG.E,
//   and EG.E is visible to the recheck after EG.M returns. The futex word `wake_`
//   is read (EG.W2) before the recheck and bumped by the waking reader after EG.W4,
//   so a wake between the recheck and the sleep makes the sleep return.
//   Before each sleep the writer raises every pending reader's flag again
//   with an exchange, and runs EG.M again if one was down: the reader took it to
//   wake an earlier sleep, and a section it began during that EG.M may carry the
//   old epoch (tests/relacy, mutant trust_earlier_raise).
//   In fence mode the reader's unlock has no fence and the writer has no
//   membarrier: a wake can be lost, so the sleep there is bounded (the
//   previous fixed 50 us sleep) and a lost wake costs at most that.
#pragma once

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <vector>

#include "detail/assert_debug.hpp"
#include "detail/atomic.hpp"
#include "detail/fatal.hpp"
#include "detail/schedule_point.hpp"
#include "detail/thread_records.hpp"
#include "grace_stats.hpp"
#include "options.hpp"

namespace hotswap {

class epoch_grace {
  // A record's state_ is one word, `epoch | fence_flag | depth`, written only
  // by its thread: the low 15 bits count nested sections (0 = inactive), bit
  // 15 marks the records of a fence-mode domain, and the epoch advances in
  // steps of 2^16. Entering and leaving touch this word only, and the common
  // case (outermost section, membarrier mode) needs a single test.
  static constexpr std::uint64_t depth_mask = 0x7fff;
  static constexpr std::uint64_t fence_flag = 0x8000;
  static constexpr std::uint64_t low_bits = depth_mask | fence_flag;
  static constexpr std::uint64_t epoch_step = low_bits + 1;
  static constexpr std::uint64_t first_epoch = epoch_step;

 public:
  /// Deepest nesting of read sections on one thread; one more terminates.
  static constexpr std::uint32_t max_nesting = depth_mask;

  /// A thread's reader record: what a hot caller holds on to.
  class alignas(64) reader : public detail::record_links {
   public:
    // lock() and unlock() are the hot path: always inlined, whatever the
    // optimiser thinks of the caller.
    [[gnu::always_inline]] void lock() noexcept {
      const std::uint64_t s = state_.load(std::memory_order_relaxed);  // only this thread writes it
      // One test covers both rare cases: a nested section, and a record of a
      // fence-mode domain (its flag never leaves the word).
      if ((s & low_bits) != 0) [[unlikely]] {
        lock_rare(s);
        return;
      }
      // EG.B: acquire pairs with EG.A (the writer's epoch bump): a reader that sees
      // the new epoch sees every version published before it.
      const std::uint64_t e = epoch_->load(std::memory_order_acquire);
      HOTSWAP_SCHEDULE_POINT("reader: epoch loaded, not announced");
      // EG.C: the announcement the writer polls (EG.D). Release, free on x86: C++20
      // release sequences no longer pass through later plain stores, so a
      // writer that stops waiting on seeing EG.C must still synchronise with our
      // previous unlock (EG.E). Ordering against our later loads comes from the
      // barrier below.
      state_.store(e | 1, std::memory_order_release);
      detail::compiler_fence();  // EG.M: compiler only; the writer's membarrier is the CPU barrier
      HOTSWAP_SCHEDULE_POINT("reader: announced");
    }

    [[gnu::always_inline]] void unlock() noexcept {
      const std::uint64_t s = state_.load(std::memory_order_relaxed);
      HOTSWAP_ASSERT((s & depth_mask) != 0, "hotswap: unlock() without a matching lock()");
      if ((s & depth_mask) == 1) HOTSWAP_SCHEDULE_POINT("reader: leaving");
      // EG.E: release pairs with EG.D: our reads of old versions happen before the
      // writer concludes we left, hence before reclamation. Leaving the
      // outermost section leaves `epoch | 0`: inactive.
      state_.store(s - 1, std::memory_order_release);
      detail::compiler_fence();  // compiler only: EG.E before EG.W4; pairs with EG.M
      // EG.W4: a writer sleeping until we leave raised this flag (EG.W1). Read-mostly
      // and in our own line: a load and a test on the common path.
      if (wake_wanted_.load(std::memory_order_relaxed) != 0) [[unlikely]] wake_writer(s - 1);
    }

    std::uint32_t nesting() const noexcept {
      return static_cast<std::uint32_t>(state_.load(std::memory_order_relaxed) & depth_mask);
    }

   private:
    friend class epoch_grace;
    friend class detail::record_list<reader>;

    // Reached through [[unlikely]], so compilers lay it out of the hot path.
    // (Not [[gnu::cold]]: GCC then size-optimises the fence into an mfence,
    // measured ~20 ns here against ~1 ns for the lock-or it emits otherwise.)
    void lock_rare(std::uint64_t s) noexcept {
      if ((s & depth_mask) != 0) {
        // The depth must never carry into the fence flag: the section would
        // read as inactive and a version in use could be reclaimed.
        if ((s & depth_mask) == max_nesting) [[unlikely]] detail::nesting_overflow();
        state_.store(s + 1, std::memory_order_release);  // nested: same epoch, one level deeper; EG.C
        return;
      }
      // The outermost section of a fence-mode record: EG.B and EG.C as in lock(),
      // then a full fence instead of membarrier.
      const std::uint64_t e = epoch_->load(std::memory_order_acquire);
      HOTSWAP_SCHEDULE_POINT("reader: epoch loaded, not announced");
      state_.store(e | fence_flag | 1, std::memory_order_release);  // EG.C, as in lock()
      if (!detail::weakened(detail::mutant::no_reader_fence))
        detail::thread_fence(std::memory_order_seq_cst);  // EG.F: pairs with the writer's EG.F after EG.A
      HOTSWAP_SCHEDULE_POINT("reader: announced");
    }

    // Out of line: runs once per grace period that slept on this reader.
    [[gnu::noinline]] void wake_writer(std::uint64_t left) noexcept {
      if ((left & depth_mask) != 0) return;  // a nested unlock: the writer waits for the outermost one
      wake_wanted_.store(0, std::memory_order_relaxed);  // until a writer asks again (EG.W1)
      // EG.W3: release pairs with EG.W2: a writer that reads this bump sees EG.E.
      wake_->fetch_add(1, std::memory_order_release);
      detail::futex_wake_all(*wake_);
    }

    void on_claim() noexcept {
      tid_.store(static_cast<pid_t>(::syscall(SYS_gettid)), std::memory_order_relaxed);
      wake_wanted_.store(0, std::memory_order_relaxed);  // a flag left for the previous owner
      state_.store(fence_on_lock_ ? fence_flag : 0, std::memory_order_relaxed);  // epoch 0: inactive
    }
    void on_release() noexcept {
      state_.store(0, std::memory_order_release);  // EG.E: the last section's reads happen before EG.D
    }

    detail::atomic<std::uint64_t> state_{0};  // epoch | fence_flag | depth; 0 = never entered
    // Raised by a writer about to sleep until this reader leaves (EG.W1); cleared
    // by the reader when it wakes that writer. The only field writers store to.
    detail::atomic<std::uint32_t> wake_wanted_{0};
    bool fence_on_lock_ = false;           // fixed at claim; read only by on_claim()
    const detail::atomic<std::uint64_t>* epoch_ = nullptr;
    detail::atomic<std::uint32_t>* wake_ = nullptr;  // the domain's futex word
    detail::atomic<pid_t> tid_{0};
  };

  explicit epoch_grace(const domain_options& opt)
      : options_(opt), fence_on_lock_(choose_fence(opt.grace)) {}

  reader& this_thread_reader() {
    return readers_.this_thread([this](reader& r) {
      r.epoch_ = &epoch_;
      r.wake_ = &wake_;
      r.fence_on_lock_ = fence_on_lock_;
    });
  }
  reader* this_thread_reader_if_any() noexcept { return readers_.this_thread_if_any(); }
  void detach_this_thread() noexcept { readers_.detach_this_thread(); }

  /// Whether `r` is a record of this policy (a cheap debug check for callers
  /// that pass a reader around).
  bool owns(const reader& r) const noexcept { return r.epoch_ == &epoch_; }

  /// In a child after fork(): only the forking thread exists, so every other
  /// thread's record is given back (a section it had open would otherwise
  /// block every grace period in the child).
  void after_fork_in_child() noexcept {
    reader* mine = readers_.this_thread_if_any();
    if (mine != nullptr) mine->tid_.store(static_cast<pid_t>(::syscall(SYS_gettid)), std::memory_order_relaxed);
    readers_.for_each([&](reader& r) {
      if (&r == mine || !r.in_use.load(std::memory_order_relaxed)) return;  // single-threaded here
      r.on_release();
      r.in_use.store(false, std::memory_order_relaxed);
    });
  }

  /// Waits until every read section that began before the call has ended.
  void synchronize() {
    // EG.A: pairs with EG.B. Every publish sequenced before this call happens before
    // any section that observes `target`. seq_cst: a member of the EG.F order.
    HOTSWAP_SCHEDULE_POINT("writer: before epoch bump");
    const std::uint64_t target = epoch_.fetch_add(epoch_step, std::memory_order_seq_cst) + epoch_step;
    HOTSWAP_SCHEDULE_POINT("writer: epoch bumped");
    // EG.F: pairs with the fence-mode reader's EG.F after EG.C and with the claim EG.F
    // (Dekker): either we see its announcement or claim, or it sees EG.A.
    detail::thread_fence(std::memory_order_seq_cst);
    grace_periods_.fetch_add(1, std::memory_order_relaxed);

    std::vector<reader*> pending;
    readers_.for_each([&](reader& r) {
      // A free record has no section, and a thread claiming it afterwards
      // sees `target` (EG.F: claim() fences after its CAS; we fenced after EG.A).
      // TR.G: acquire pairs with the release in record_list::release(): sections
      // of the thread that gave it back happened before.
      if (!r.in_use.load(std::memory_order_acquire)) return;
      if (!done_without_barrier(r, target)) pending.push_back(&r);
    });
    if (pending.empty()) return;

    const auto start = detail::clock::now();
    bool barrier_done = fence_on_lock_;  // in fence mode `inactive` is trusted at once
    bool stall_reported = false;
    unsigned polls_after_barrier = 0;
    for (unsigned round = 0;; ++round) {
      erase_done(pending, target, barrier_done);
      if (pending.empty()) return;
      HOTSWAP_SCHEDULE_POINT("writer: readers pending");
      const auto waited = detail::clock::now() - start;
      if (!barrier_done && waited >= options_.membarrier_after) {
        // EG.W1 for the readers that look inside an old section: EG.M below then
        // also covers the Dekker argument for them (see the top).
        const bool flag_late = detail::weakened(detail::mutant::flag_after_membarrier);
        if (!flag_late) ask_inside_to_wake(pending);
        // EG.M: every reader's lock-time store (EG.C) is now visible, and every
        // later section loads the epoch after EG.A.
        if (!detail::weakened(detail::mutant::no_membarrier)) detail::membarrier_all();
        membarriers_.fetch_add(1, std::memory_order_relaxed);
        if (flag_late) ask_inside_to_wake(pending);
        barrier_done = true;
        continue;
      }
      if (!stall_reported && waited >= options_.stall_threshold) {
        stall_reported = true;
        report_stalls(pending, waited, target);
      }
      // A few polls first: a busy reader shows the new epoch, or leaves,
      // within one section. Then sleep rather than spin or yield: a reader
      // preempted inside needs the CPU we would take (on a loaded machine one
      // yield costs milliseconds).
      if (!barrier_done && round < detail::spin_polls) {
        detail::cpu_relax();
      } else if (!barrier_done) {
        sleep_until_woken(pending, target, false, options_.membarrier_after - waited);
      } else if (polls_after_barrier < detail::spin_polls) {
        ++polls_after_barrier;
        detail::cpu_relax();
      } else {
        sleep_until_woken(pending, target, true, stall_reported ? options_.stall_threshold
                                                                : options_.stall_threshold - waited);
      }
    }
  }

  bool uses_membarrier() const noexcept { return !fence_on_lock_; }

  grace_stats stats() const noexcept {
    return {grace_periods_.load(std::memory_order_relaxed), membarriers_.load(std::memory_order_relaxed),
            stalls_.load(std::memory_order_relaxed), sleeps_.load(std::memory_order_relaxed)};
  }

 private:
  /// EG.W1: asks r to wake us when it leaves its outermost section. Returns
  /// whether the flag was down: a raise the reader may not see until a barrier
  /// of ours (EG.M, or the fence in fence mode) has run, so one must follow before
  /// the re-check. An exchange rather than a store: it reads the newest value
  /// of the flag, so an answer of "up" proves the reader has not consumed an
  /// earlier raise, which an earlier barrier already covers. (A flag the
  /// reader consumed, waking an earlier sleep of ours, is down again and is
  /// raised afresh: trusting the earlier raise instead loses the wake of a
  /// section that began during our membarrier, as tests/relacy found.)
  /// Relaxed: the barrier that follows orders it before our re-check.
  static bool ask_to_wake(reader& r) noexcept { return r.wake_wanted_.exchange(1, std::memory_order_relaxed) == 0; }

  /// EG.W1 for the pending readers that look inside an old section.
  static void ask_inside_to_wake(const std::vector<reader*>& pending) noexcept {
    for (reader* r : pending)
      if ((state_of(*r) & depth_mask) != 0) ask_to_wake(*r);
  }

  /// Sleeps until a pending reader leaves its outermost section, or for at
  /// most `limit`: the stall report; in fence mode 50 us, as a lost wake is
  /// possible there; before the barrier the time left until it (EG.M then
  /// covers the flags raised here, and until then a lost wake costs at most
  /// the rest of membarrier_after). The caller re-checks the records either way.
  void sleep_until_woken(std::vector<reader*>& pending, std::uint64_t target, bool barrier_done,
                         std::chrono::nanoseconds limit) {
    // EG.W2: acquire pairs with EG.W3: a wake counted here happened after its EG.E.
    const bool late_read = detail::weakened(detail::mutant::late_futex_read);
    std::uint32_t seq = late_read ? 0 : wake_.load(std::memory_order_acquire);
    bool fresh = false, asked = barrier_done;
    for (reader* r : pending) {
      if (barrier_done) {
        if (!detail::weakened(detail::mutant::trust_earlier_raise)) fresh |= ask_to_wake(*r);
      } else if ((state_of(*r) & depth_mask) != 0) {
        ask_to_wake(*r);  // EG.W1 for the readers that look inside; not covered until EG.M
        asked = true;
      }
    }
    if (!asked) {
      // Only idle-looking readers: none would wake us, and a timed sleep
      // costs the timer slack (50 us by default). Poll on until EG.M.
      detail::cpu_relax();
      return;
    }
    if (fresh) {
      if (fence_on_lock_) {
        detail::thread_fence(std::memory_order_seq_cst);  // a seq_cst fence (the EG.F order): EG.W1 before the recheck (readers have no partner)
      } else {
        detail::membarrier_all();  // EG.M, as in synchronize(): EG.W1 before every reader's EG.W4, or its EG.E before the recheck
        membarriers_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    erase_done(pending, target, barrier_done);
    if (pending.empty()) return;
    if (late_read) seq = wake_.load(std::memory_order_acquire);
    HOTSWAP_SCHEDULE_POINT("writer: about to sleep");
    if (fence_on_lock_) limit = std::min<std::chrono::nanoseconds>(limit, std::chrono::microseconds(50));
    detail::futex_wait(wake_, seq, std::max<std::chrono::nanoseconds>(limit, std::chrono::microseconds(1)));
    sleeps_.fetch_add(1, std::memory_order_relaxed);
  }

  static void erase_done(std::vector<reader*>& pending, std::uint64_t target, bool barrier_done) {
    std::erase_if(pending, [&](const reader* r) {
      return barrier_done ? done_after_barrier(*r, target) : done_without_barrier(*r, target);
    });
  }

  // EG.D: acquire pairs with EG.C and EG.E (EG.C after EG.M, or EG.F in fence mode).
  static std::uint64_t state_of(const reader& r) noexcept { return r.state_.load(std::memory_order_acquire); }

  static bool done_without_barrier(const reader& r, std::uint64_t target) noexcept {
    return (state_of(r) & ~low_bits) >= target;
  }
  static bool done_after_barrier(const reader& r, std::uint64_t target) noexcept {
    const std::uint64_t s = state_of(r);
    return (s & depth_mask) == 0 || (s & ~low_bits) >= target;
  }

  void report_stalls(const std::vector<reader*>& pending, std::chrono::nanoseconds waited, std::uint64_t target) {
    for (reader* r : pending) {
      if (done_after_barrier(*r, target)) continue;
      stalls_.fetch_add(1, std::memory_order_relaxed);
      if (options_.on_stall) options_.on_stall({r->tid_.load(std::memory_order_relaxed), waited});
    }
  }

  static bool choose_fence(grace_mode mode) {
    if (mode == grace_mode::fence) return true;
    if (detail::membarrier_register()) return false;
    if (mode == grace_mode::membarrier)
      throw std::runtime_error(
          "hotswap: grace_mode::membarrier requested but membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) "
          "is unavailable (kernel < 4.14 or a seccomp filter); use grace_mode::automatic or fence");
    return true;
  }

  domain_options options_;
  bool fence_on_lock_;
  alignas(64) detail::atomic<std::uint64_t> epoch_{first_epoch};  // written only by grace periods
  alignas(64) detail::thread_readers<reader> readers_;
  detail::atomic<std::uint64_t> grace_periods_{0};
  detail::atomic<std::uint64_t> membarriers_{0};
  detail::atomic<std::uint64_t> stalls_{0};
  detail::atomic<std::uint64_t> sleeps_{0};
  alignas(64) detail::atomic<std::uint32_t> wake_{0};  // futex word: bumped by each waking reader (EG.W3)
};

}  // namespace hotswap
