// The core's orderings checked under the C++ memory model with Relacy.
//
// Relacy runs a test's threads under many schedules and, for every load, lets
// it read any value the C++ memory model allows (stale values included), and
// reports a data race on an rl::var whose accesses are not ordered by
// happens-before. A version's payload is an rl::var: a reader reading it and
// the reclaimer poisoning it race unless the protocol orders them, so "no race
// reported" means "no use after reclaim under any allowed execution".
//
// This is a model, in Relacy types, of the algorithm in kernel/core, written
// to follow the headers line by line (labels A..G, L1/L2, R1..R4, P1..P4 as in
// epoch_grace.hpp, detail/thread_records.hpp, retire.hpp,
// detail/pin_counter.hpp). Where it differs:
//   * one reader record and one writer per test (the protocol is per record);
//   * membarrier() is modelled as the kernel's IPI: the writer raises a request
//     and waits for an acknowledgement; the reader, at every point between its
//     shared accesses (and when it finishes: a context switch), may take the
//     IPI, which runs a seq_cst fence on it and acknowledges with release. The
//     writer fences before and after. This is one sound reading of the
//     syscall's contract (a full barrier on every running thread between
//     entry and return); the reader's compiler barrier is implicit (Relacy
//     never reorders a thread's own operations).
//   * Relacy's modification order of an atomic follows execution order, so a
//     reordering that needs a store to be placed later in modification order
//     than an RMW that executed after it (the lost update P3 prevents) cannot
//     be shown here; P3 is argued in pin_counter.hpp, not checked.
//
// Usage: relacy_kernel_model <test> [mutant]. Exit 0 when Relacy finds no
// failure; with a mutant, the run is expected to fail (CTest WILL_FAIL).
#include <relacy/relacy.hpp>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace model {

// epoch_grace's state word.
constexpr std::uint64_t depth_mask = 0x7fff;
constexpr std::uint64_t fence_flag = 0x8000;
constexpr std::uint64_t low_bits = depth_mask | fence_flag;
constexpr std::uint64_t epoch_step = low_bits + 1;
constexpr int dead = -1;

// Which ordering a mutant weakens; none for the real algorithm.
enum class mutant {
  none,
  no_reader_fence,        // fence mode: drop the reader's F after C
  no_membarrier,          // membarrier mode: trust `inactive` without membarrier
  no_claim_fence,         // claim/link: drop the claim F
  retire_store_buffering, // R1 release only, R2 acquire only (the shape before the fix)
  pin_release_relaxed,    // P1 relaxed
  flag_after_membarrier,  // sleeping wait: W1 raised after M instead of before it
  late_futex_read,        // sleeping wait: W2 after the re-check instead of before it
  trust_earlier_raise,    // sleeping wait: a reader whose flag this call raised once is not asked again
                          // (the kernel before the fix Relacy found: a wake lost for 100 ms)
  qsbr_announce_relaxed,  // QSBR: Q relaxed
  qsbr_no_online_fence,   // QSBR: online() without its fence
  qsbr_no_wake_fence,     // QSBR: the writer's fence between F and its re-check dropped
  qsbr_exit_without_wake, // QSBR: a thread giving its record back stores `offline` and wakes nobody
};

struct options {
  bool fence_mode = false;
  mutant weaken = mutant::none;
};
inline options opt;  // set by main() before each simulation

// The IPI model of membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) for one
// reader. Each call is a numbered request; the reader takes the IPI (a seq_cst
// fence, then an acknowledgement with release) at any point between its shared
// accesses, and once it has finished every later request counts as taken (a
// thread that is gone needs no barrier; its exit was a full one).
struct membarrier_model {
  static constexpr int gone = 1 << 30;
  rl::atomic<int> request;
  rl::atomic<int> ack;
  int taken = 0;  // reader's own

  void reset() {
    request($).store(0, rl::mo_relaxed);
    ack($).store(0, rl::mo_relaxed);
    taken = 0;
  }
  // Writer side.
  void membarrier() {
    rl::atomic_thread_fence(rl::mo_seq_cst, $);
    const int mine = request($).fetch_add(1, rl::mo_release) + 1;
    while (ack($).load(rl::mo_acquire) < mine) rl::yield(1, $);
    rl::atomic_thread_fence(rl::mo_seq_cst, $);
  }
  // Reader side: a point where the IPI may land.
  void may_interrupt() {
    const int r = request($).load(rl::mo_acquire);
    if (r > taken) take(r);
  }
  void reader_finished() { take(gone); }
  void take(int r) {
    rl::atomic_thread_fence(rl::mo_seq_cst, $);
    ack($).store(r, rl::mo_release);
    taken = r;
  }
};

// futex(2) on one word: FUTEX_WAIT compares the word and sleeps as one step
// with respect to FUTEX_WAKE (the kernel's hash-bucket lock, here a mutex), so
// a wake issued after a bump the waiter did not see still wakes it. No
// timeout: a lost wake-up leaves the writer asleep forever, which Relacy
// reports as a deadlock. (Relacy's condition variable also wakes spuriously,
// as futex_wait may.)
struct futex_model {
  rl::atomic<std::uint32_t> word;
  rl::mutex bucket;
  rl::condition_variable sleepers;

  void reset() { word($).store(0, rl::mo_relaxed); }
  void wait(std::uint32_t expected) {
    bucket.lock($);
    if (word($).load(rl::mo_seq_cst) == expected) sleepers.wait(bucket, $);
    bucket.unlock($);
  }
  void wake_all() {
    bucket.lock($);
    sleepers.notify_all($);
    bucket.unlock($);
  }
};

// One reader record and what a grace period reads of it (epoch_grace.hpp).
struct record {
  rl::atomic<bool> in_use;
  rl::atomic<std::uint64_t> state;
  rl::atomic<int> next;  // index, -1 = end (immutable once linked)
  rl::atomic<std::uint32_t> wake_wanted;
};

// The shared world of the grace-period tests: a slot with two versions.
struct world {
  rl::atomic<std::uint64_t> epoch;
  rl::atomic<int> head;  // record list head: -1 or 0
  record rec;
  rl::atomic<int> current;  // the slot: version index
  rl::var<int> payload[2];
  membarrier_model mb;
  futex_model wake;

  void reset(bool record_linked, bool record_in_use) {
    epoch($).store(epoch_step, rl::mo_relaxed);
    head($).store(record_linked ? 0 : -1, rl::mo_relaxed);
    rec.in_use($).store(record_in_use, rl::mo_relaxed);
    rec.state($).store(opt.fence_mode ? fence_flag : 0, rl::mo_relaxed);
    rec.next($).store(-1, rl::mo_relaxed);
    rec.wake_wanted($).store(0, rl::mo_relaxed);
    current($).store(0, rl::mo_relaxed);
    payload[0]($) = 100;
    mb.reset();
    wake.reset();
  }

  void may_interrupt() {
    if (!opt.fence_mode) mb.may_interrupt();
  }

  // ---- reader: epoch_grace::reader::lock()/unlock() and slot::call() ----
  void read_once() {
    const std::uint64_t s = rec.state($).load(rl::mo_relaxed);  // own word
    const std::uint64_t e = epoch($).load(rl::mo_acquire);      // B
    may_interrupt();
    rec.state($).store(e | (s & fence_flag) | 1, rl::mo_release);  // C
    if (opt.fence_mode && opt.weaken != mutant::no_reader_fence)
      rl::atomic_thread_fence(rl::mo_seq_cst, $);  // F (reader)
    may_interrupt();
    const int v = current($).load(rl::mo_acquire);  // pairs with the publish exchange
    may_interrupt();
    RL_ASSERT(payload[v]($) != dead);
    may_interrupt();
    rec.state($).store(e | (s & fence_flag), rl::mo_release);  // E
    may_interrupt();
    if (rec.wake_wanted($).load(rl::mo_relaxed) != 0) {  // W4
      rec.wake_wanted($).store(0, rl::mo_relaxed);
      wake.word($).fetch_add(1, rl::mo_release);  // W3
      wake.wake_all();
    }
    may_interrupt();
  }

  // ---- claim: record_list::claim() ----
  void claim_new() {
    rec.in_use($).store(true, rl::mo_relaxed);  // not reachable yet
    int h = head($).load(rl::mo_relaxed);
    do {
      rec.next($).store(h, rl::mo_relaxed);
    } while (!head($).compare_exchange_weak(h, 0, rl::mo_seq_cst, rl::mo_relaxed));  // L1
    claim_fence();
  }
  void claim_free() {
    bool expected = false;
    const bool won = rec.in_use($).compare_exchange_strong(expected, true, rl::mo_acquire);  // pairs with G
    RL_ASSERT(won);
    claim_fence();
  }
  void claim_fence() {
    if (opt.weaken != mutant::no_claim_fence) rl::atomic_thread_fence(rl::mo_seq_cst, $);  // F (claim)
    rec.state($).store(opt.fence_mode ? fence_flag : 0, rl::mo_relaxed);  // on_claim()
  }

  // ---- writer: slot::publish() + epoch_grace::synchronize() + reclaim ----
  void publish_and_reclaim() {
    payload[1]($) = 200;
    const int old = current($).exchange(1, rl::mo_acq_rel);  // publish
    synchronize();
    payload[old]($) = dead;  // the deleter
  }

  bool done_without_barrier(std::uint64_t s, std::uint64_t target) { return (s & ~low_bits) >= target; }
  bool done_after_barrier(std::uint64_t s, std::uint64_t target) {
    return (s & depth_mask) == 0 || (s & ~low_bits) >= target;
  }

  void synchronize() {
    const std::uint64_t target = epoch($).fetch_add(epoch_step, rl::mo_seq_cst) + epoch_step;  // A
    rl::atomic_thread_fence(rl::mo_seq_cst, $);                                            // F (writer)
    bool pending = false;
    for (int r = head($).load(rl::mo_seq_cst); r != -1; r = rec.next($).load(rl::mo_relaxed)) {  // L2
      if (!rec.in_use($).load(rl::mo_acquire)) continue;  // G
      pending = !done_without_barrier(rec.state($).load(rl::mo_acquire), target);  // D
    }
    if (!pending) return;
    if (opt.fence_mode) {
      // Fence mode trusts `inactive` at once; its sleep is bounded (a wake
      // can be lost there by design), modelled as polling.
      while (!done_after_barrier(rec.state($).load(rl::mo_acquire), target)) rl::yield(1, $);  // D
      return;
    }
    // membarrier_after has passed: raise the flag of a reader that looks
    // inside (W1), then M, then sleep until it leaves, as the kernel does.
    bool raised = false;
    const bool inside = (rec.state($).load(rl::mo_acquire) & depth_mask) != 0;  // D
    if (inside && opt.weaken != mutant::flag_after_membarrier) raised = true, ask_to_wake();
    if (opt.weaken != mutant::no_membarrier) mb.membarrier();  // M
    if (inside && opt.weaken == mutant::flag_after_membarrier) raised = true, ask_to_wake();
    while (!done_after_barrier(rec.state($).load(rl::mo_acquire), target)) sleep_until_woken(target, raised);  // D
  }

  // W1; true when the flag was down (a barrier must follow before the re-check).
  bool ask_to_wake() { return rec.wake_wanted($).exchange(1, rl::mo_relaxed) == 0; }

  // epoch_grace::sleep_until_woken() after the barrier.
  void sleep_until_woken(std::uint64_t target, bool& raised) {
    std::uint32_t seq = 0;
    if (opt.weaken != mutant::late_futex_read) seq = wake.word($).load(rl::mo_acquire);  // W2
    const bool fresh = opt.weaken == mutant::trust_earlier_raise ? !raised && ask_to_wake() : ask_to_wake();
    raised = true;
    if (fresh) mb.membarrier();  // M
    if (done_after_barrier(rec.state($).load(rl::mo_acquire), target)) return;  // D: the re-check
    if (opt.weaken == mutant::late_futex_read) seq = wake.word($).load(rl::mo_acquire);
    wake.wait(seq);
  }
};

// A reader with a claimed record (fence or membarrier mode) against a writer.
struct grace_test : rl::test_suite<grace_test, 2> {
  world w;
  void before() { w.reset(true, true); }
  void thread(unsigned id) {
    if (id == 0) {
      w.read_once();
      w.read_once();
      if (!opt.fence_mode) w.mb.reader_finished();
    } else {
      w.publish_and_reclaim();
    }
  }
};

// A thread linking a brand-new record, then reading, against a writer.
struct claim_new_test : rl::test_suite<claim_new_test, 2> {
  world w;
  void before() { w.reset(false, false); }
  void thread(unsigned id) {
    if (id == 0) {
      w.claim_new();
      w.read_once();
      if (!opt.fence_mode) w.mb.reader_finished();
    } else {
      w.publish_and_reclaim();
    }
  }
};

// A thread claiming a free record (linked, given back earlier), then reading.
struct claim_free_test : rl::test_suite<claim_free_test, 2> {
  world w;
  void before() { w.reset(true, false); }
  void thread(unsigned id) {
    if (id == 0) {
      w.claim_free();
      w.read_once();
      if (!opt.fence_mode) w.mb.reader_finished();
    } else {
      w.publish_and_reclaim();
    }
  }
};

// qsbr_grace.hpp: a registered thread reads, announces a quiescent state,
// goes offline and online again, reads, and gives its record back (thread
// exit or detach()), against a writer that publishes, waits (sleeping on the
// futex once it has asked to be woken) and reclaims.
struct qsbr_test : rl::test_suite<qsbr_test, 2> {
  static constexpr std::uint64_t offline_state = 0;
  rl::atomic<std::uint64_t> epoch;
  rl::atomic<std::uint64_t> state;
  rl::atomic<std::uint32_t> wake_wanted;
  rl::atomic<int> current;
  rl::var<int> payload[2];
  futex_model wake;

  void before() {
    epoch($).store(1, rl::mo_relaxed);
    state($).store(1, rl::mo_relaxed);  // claimed and online (on_claim)
    wake_wanted($).store(0, rl::mo_relaxed);
    current($).store(0, rl::mo_relaxed);
    payload[0]($) = 100;
    wake.reset();
  }

  // ---- reader ----
  void read() {
    const int v = current($).load(rl::mo_acquire);  // pairs with the publish exchange
    RL_ASSERT(payload[v]($) != dead);
  }
  void announce(std::uint64_t value) {
    state($).store(value, opt.weaken == mutant::qsbr_announce_relaxed ? rl::mo_relaxed : rl::mo_release);  // Q
    rl::atomic_thread_fence(rl::mo_seq_cst, $);  // pairs with the writer's fence after F
    if (wake_wanted($).load(rl::mo_relaxed) != 0) {  // L
      wake_wanted($).store(0, rl::mo_relaxed);
      wake.word($).fetch_add(1, rl::mo_release);  // H
      wake.wake_all();
    }
  }
  void quiescent() {
    const std::uint64_t e = epoch($).load(rl::mo_acquire);  // B
    if (e != state($).load(rl::mo_relaxed)) announce(e);
  }
  void online() {
    state($).store(epoch($).load(rl::mo_acquire), rl::mo_relaxed);  // B
    if (opt.weaken != mutant::qsbr_no_online_fence) rl::atomic_thread_fence(rl::mo_seq_cst, $);
  }
  void give_record_back() {  // on_release()
    if (opt.weaken == mutant::qsbr_exit_without_wake) state($).store(offline_state, rl::mo_release);
    else announce(offline_state);
  }

  // ---- writer: publish, qsbr_grace::synchronize(), reclaim ----
  bool done(std::uint64_t target) {
    const std::uint64_t s = state($).load(rl::mo_acquire);  // D
    return s == offline_state || s >= target;
  }
  void synchronize() {
    const std::uint64_t target = epoch($).fetch_add(1, rl::mo_seq_cst) + 1;  // A
    rl::atomic_thread_fence(rl::mo_seq_cst, $);  // pairs with online()'s fence
    while (!done(target)) {
      const std::uint32_t seq = wake.word($).load(rl::mo_acquire);  // G: pairs with H
      wake_wanted($).store(1, rl::mo_relaxed);                      // F
      if (opt.weaken != mutant::qsbr_no_wake_fence) rl::atomic_thread_fence(rl::mo_seq_cst, $);
      if (done(target)) return;
      wake.wait(seq);
    }
  }

  void thread(unsigned id) {
    if (id == 0) {
      read();
      quiescent();
      read();
      announce(offline_state);  // offline()
      online();
      read();
      give_record_back();
    } else {
      payload[1]($) = 200;
      const int old = current($).exchange(1, rl::mo_acq_rel);  // publish
      synchronize();
      payload[old]($) = dead;  // the deleter
    }
  }
};

// retire() then barrier() on one thread; the reclaimer's rounds on another
// (retire.hpp; rounds are serialised, here by being on one thread).
struct retire_barrier_test : rl::test_suite<retire_barrier_test, 2> {
  static constexpr int rounds = 2;
  rl::atomic<int> pending;  // 0 = empty, 1 = our node
  rl::atomic<std::uint64_t> rounds_started, rounds_done;
  rl::var<int> node_payload;  // the retired object
  rl::var<int> reclaimed;     // written by the deleter

  void before() {
    pending($).store(0, rl::mo_relaxed);
    rounds_started($).store(0, rl::mo_relaxed);
    rounds_done($).store(0, rl::mo_relaxed);
    reclaimed($) = 0;
  }
  void thread(unsigned id) {
    const bool old_shape = opt.weaken == mutant::retire_store_buffering;
    if (id == 0) {
      node_payload($) = 42;
      int h = pending($).load(rl::mo_relaxed);
      while (!pending($).compare_exchange_weak(h, 1, old_shape ? rl::mo_release : rl::mo_acq_rel,
                                               rl::mo_relaxed)) {  // R1
      }
      const std::uint64_t seen = rounds_started($).load(old_shape ? rl::mo_acquire : rl::mo_relaxed);  // R3
      if (seen >= rounds) return;  // the round it needs is beyond this model
      while (rounds_done($).load(rl::mo_acquire) <= seen) rl::yield(1, $);  // R4
      RL_ASSERT(reclaimed($) == 1);  // barrier() returned: the deleter has run
    } else {
      for (int r = 0; r < rounds; ++r) {
        rounds_started($).fetch_add(1, old_shape ? rl::mo_acq_rel : rl::mo_relaxed);
        const int batch = pending($).exchange(0, old_shape ? rl::mo_acquire : rl::mo_acq_rel);  // R2
        if (batch == 1) {
          RL_ASSERT(node_payload($) == 42);
          reclaimed($) = 1;
        }
        rounds_done($).fetch_add(1, rl::mo_release);  // R4
      }
    }
  }
};

// Two pins (one copied through the central counter after parking) released
// while the reclaimer parks the version (detail/pin_counter.hpp, one shard).
struct pin_park_test : rl::test_suite<pin_park_test, 3> {
  static constexpr std::uint64_t parked = std::uint64_t{1} << 63;
  static constexpr std::int64_t bias = std::int64_t{1} << 62;
  rl::atomic<std::uint64_t> shard;
  rl::atomic<std::int64_t> central;
  rl::atomic<int> destroyers;
  rl::var<int> payload;

  void before() {
    shard($).store(2, rl::mo_relaxed);  // two pins taken inside read sections earlier
    central($).store(0, rl::mo_relaxed);
    destroyers($).store(0, rl::mo_relaxed);
    payload($) = 7;
  }
  void after() { RL_ASSERT(destroyers($).load(rl::mo_relaxed) == 1); }

  void destroy() {
    destroyers($).fetch_add(1, rl::mo_relaxed);
    payload($) = dead;
  }
  void acquire_copy() {
    std::uint64_t cur = shard($).load(rl::mo_relaxed);
    while ((cur & parked) == 0)
      if (shard($).compare_exchange_weak(cur, cur + 1, rl::mo_relaxed)) return;
    rl::atomic_thread_fence(rl::mo_acquire, $);  // P3
    central($).fetch_add(1, rl::mo_relaxed);
  }
  void release() {
    std::uint64_t cur = shard($).load(rl::mo_relaxed);
    const rl::memory_order p1 = opt.weaken == mutant::pin_release_relaxed ? rl::mo_relaxed : rl::mo_release;
    while ((cur & parked) == 0)
      if (shard($).compare_exchange_weak(cur, cur - 1, p1, rl::mo_relaxed)) return;  // P1
    rl::atomic_thread_fence(rl::mo_acquire, $);                                     // P3
    if (central($).fetch_sub(1, rl::mo_acq_rel) == 1) destroy();                    // P4
  }
  void park() {
    central($).store(bias, rl::mo_relaxed);
    const std::uint64_t moved = shard($).exchange(parked, rl::mo_acq_rel);  // P2
    central($).fetch_add(static_cast<std::int64_t>(moved), rl::mo_relaxed);
    if (central($).fetch_sub(bias, rl::mo_acq_rel) == bias) destroy();  // P4
  }

  void thread(unsigned id) {
    if (id == 0) {
      RL_ASSERT(payload($) != dead);
      release();
    } else if (id == 1) {
      RL_ASSERT(payload($) != dead);
      acquire_copy();
      RL_ASSERT(payload($) != dead);
      release();
      RL_ASSERT(payload($) != dead);
      release();
    } else {
      park();
    }
  }
};

template <class Test>
bool run(unsigned iterations) {
  rl::test_params p;
  p.iteration_count = iterations;
  p.search_type = rl::random_scheduler_type;
  return rl::simulate<Test>(p);
}

}  // namespace model

int main(int argc, char** argv) {
  using namespace model;
  struct named_mutant {
    const char* name;
    mutant weaken;
  };
  static constexpr named_mutant mutants[] = {
      {"none", mutant::none},
      {"no_reader_fence", mutant::no_reader_fence},
      {"no_membarrier", mutant::no_membarrier},
      {"no_claim_fence", mutant::no_claim_fence},
      {"retire_store_buffering", mutant::retire_store_buffering},
      {"pin_release_relaxed", mutant::pin_release_relaxed},
      {"flag_after_membarrier", mutant::flag_after_membarrier},
      {"late_futex_read", mutant::late_futex_read},
      {"trust_earlier_raise", mutant::trust_earlier_raise},
      {"qsbr_announce_relaxed", mutant::qsbr_announce_relaxed},
      {"qsbr_no_online_fence", mutant::qsbr_no_online_fence},
      {"qsbr_no_wake_fence", mutant::qsbr_no_wake_fence},
      {"qsbr_exit_without_wake", mutant::qsbr_exit_without_wake},
  };
  // Each test: its name, whether it runs in fence mode, and the simulation.
  struct named_test {
    const char* name;
    bool fence_mode;
    bool (*run)(unsigned);
  };
  static constexpr named_test tests[] = {
      {"grace_fence", true, run<grace_test>},
      {"grace_membarrier", false, run<grace_test>},
      {"claim_new", false, run<claim_new_test>},
      {"claim_new_fence", true, run<claim_new_test>},  // the fence-mode reader's own F covers the claim (no mutant)
      {"claim_free", false, run<claim_free_test>},
      {"retire_barrier", false, run<retire_barrier_test>},
      {"pin_park", false, run<pin_park_test>},
      {"qsbr", false, run<qsbr_test>},
  };
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s TEST [MUTANT]; tests:", argv[0]);
    for (const named_test& t : tests) std::fprintf(stderr, " %s", t.name);
    std::fprintf(stderr, "\n");
    return 2;
  }
  const std::string test = argv[1];
  const std::string m = argc > 2 ? argv[2] : "none";
  const named_mutant* chosen_mutant = nullptr;
  for (const named_mutant& n : mutants)
    if (m == n.name) chosen_mutant = &n;
  if (chosen_mutant == nullptr) {
    std::fprintf(stderr, "unknown mutant %s\n", m.c_str());
    return 2;
  }
  const named_test* chosen_test = nullptr;
  for (const named_test& t : tests)
    if (test == t.name) chosen_test = &t;
  if (chosen_test == nullptr) {
    std::fprintf(stderr, "unknown test %s\n", test.c_str());
    return 2;
  }
  opt.weaken = chosen_mutant->weaken;
  opt.fence_mode = chosen_test->fence_mode;
  const bool ok = chosen_test->run(200000);
  std::printf("%s [%s]: %s\n", test.c_str(), m.c_str(), ok ? "no failure found" : "FAILURE FOUND");
  return ok ? 0 : 1;
}
