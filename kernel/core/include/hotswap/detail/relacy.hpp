// The Relacy side of detail/atomic.hpp: compiled only where HOTSWAP_RELACY is
// defined (tests/relacy), never in a normal build.
//
// Relacy (Debian relacy-dev) runs a test's threads as fibers under many
// schedules and lets every load read any value the C++ memory model allows.
// Here the core's primitives become Relacy's, each operation recording the
// kernel header's own line in Relacy's history:
//   * atomics and fences: rl::atomic and rl::atomic_thread_fence;
//   * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) as the kernel's IPI: the
//     caller fences, raises a numbered request and waits until every other
//     thread acknowledged it; a thread takes the IPI (a seq_cst fence, then an
//     acknowledgement with release) at any point between two of its shared
//     accesses, and a finished thread counts as having taken every later one.
//     One sound reading of the syscall's contract (a full barrier on every
//     running thread between entry and return). A compiler barrier is a no-op:
//     Relacy never reorders a thread's own operations.
//   * futex wait/wake: compare-and-sleep as one step with respect to wake (the
//     kernel's hash-bucket lock, here a Relacy mutex and condition variable).
//     A sleep bounded by less than a second (fence mode's 50 us backstop) may
//     time out at once; a longer one (bounded only by the stall report) is
//     taken as unbounded, so a lost wake-up shows as a deadlock.
//   * thread identity and thread-local storage: per Relacy thread; a test
//     thread ends with relacy::thread_exit(), which runs what the C++ runtime
//     runs at thread exit (the record cache gives its records back);
//   * the clock: logical, one millisecond per reading, so a run is
//     reproducible from its seed and polling budgets of microseconds are
//     spent at the first poll.
// Not modelled: fork() (the fork handlers are not registered) and the
// background reclaimer thread (model tests use reclaim_mode::manual).
#pragma once

#include <chrono>
#include <cstdint>
#include <ratio>
#include <source_location>
#include <utility>

#include <relacy/relacy.hpp>
// Relacy's macros would rewrite the kernel's own std::memory_order_* and the
// standard headers included after it; its replaced global operator new/delete
// (leak checks) stay in effect, and the wrappers below pass debug info.
#undef new
#undef delete
#undef malloc
#undef calloc
#undef realloc
#undef free
#undef memory_order_relaxed
#undef memory_order_consume
#undef memory_order_acquire
#undef memory_order_release
#undef memory_order_acq_rel
#undef memory_order_seq_cst

// The sized forms, which the standard allocator calls, must reach Relacy's
// replacements too (libstdc++'s own would free Relacy's memory with free()).
inline void operator delete(void* p, std::size_t) noexcept { ::operator delete(p); }
inline void operator delete[](void* p, std::size_t) noexcept { ::operator delete[](p); }

namespace hotswap::detail {

inline constexpr bool model_checked = true;
inline constexpr unsigned spin_polls = 0;

namespace relacy {

inline mutant weakened_step = mutant::none;  // set by the test before a simulation
constexpr int max_threads = 8;

inline rl::debug_info where(const std::source_location& l) noexcept {
  return rl::debug_info(l.function_name(), l.file_name(), l.line());
}

constexpr rl::memory_order order(std::memory_order o) noexcept {
  switch (o) {
    case std::memory_order_relaxed: return rl::mo_relaxed;
    case std::memory_order_consume: return rl::mo_consume;
    case std::memory_order_acquire: return rl::mo_acquire;
    case std::memory_order_release: return rl::mo_release;
    case std::memory_order_acq_rel: return rl::mo_acq_rel;
    default: return rl::mo_seq_cst;
  }
}

/// What one test iteration shares besides the kernel's own objects: the IPI
/// of membarrier, the futex bucket, the thread-exit handlers. A test suite
/// holds one as its first member.
struct environment {
  static constexpr int gone = 1 << 30;

  environment(int threads, bool interrupts) : threads(threads), interrupts(interrupts) {
    request($).store(0, rl::mo_relaxed);
    for (auto& a : ack) a($).store(0, rl::mo_relaxed);
    current = this;
    ++generation;
  }
  // Exit handlers still registered belong to thread-local caches made after
  // a thread's end (by the test's destructors, e.g. ~basic_domain asking for
  // this thread's reader); they hold no records. Run them, so that no cache
  // outlives the iteration whose memory it uses.
  ~environment() {
    for (auto& handlers : on_exit)
      for (auto& h : handlers)
        if (const exit_handler run = std::exchange(h, {}); run.fn != nullptr) run.fn(run.object);
    current = nullptr;
  }

  const int threads;
  const bool interrupts;  // membarrier mode: threads take IPIs
  rl::atomic<int> request;
  rl::atomic<int> ack[max_threads];
  int taken[max_threads] = {};
  rl::mutex bucket;
  rl::condition_variable sleepers;
  struct exit_handler {
    void (*fn)(void*);
    void* object;
  };
  exit_handler on_exit[max_threads][4] = {};

  inline static environment* current = nullptr;
  // Counts iterations: thread-local values start afresh in each (an iteration
  // Relacy stopped at a failure, then replays, ran no thread exits).
  inline static unsigned long generation = 0;

  void take(int me, int r) {
    rl::atomic_thread_fence(rl::mo_seq_cst, $);
    ack[me]($).store(r, rl::mo_release);
    taken[me] = r;
  }
};

inline environment& env() noexcept { return *environment::current; }
inline int me() noexcept { return static_cast<int>(rl::thread_index()); }

/// A point where the membarrier IPI may land on this thread.
inline void interrupt_point() {
  environment* e = environment::current;
  if (e == nullptr || !e->interrupts) return;
  const int r = e->request($).load(rl::mo_acquire);
  if (r > e->taken[me()]) e->take(me(), r);
}

/// The end of a test thread: what thread exit runs, then every later IPI
/// counts as taken.
inline void thread_exit() {
  environment& e = env();
  for (int i = 3; i >= 0; --i) {
    auto h = std::exchange(e.on_exit[me()][i], {});
    if (h.fn != nullptr) h.fn(h.object);
  }
  if (e.interrupts) e.take(me(), environment::gone);
}

}  // namespace relacy

inline bool weakened(mutant m) noexcept { return m == relacy::weakened_step; }

template <class T>
class atomic {
  using loc = std::source_location;

 public:
  atomic(loc l = loc::current()) : atomic(T{}, l) {}
  atomic(T v, loc l = loc::current()) { a_.store(v, rl::mo_relaxed, relacy::where(l)); }
  atomic(const atomic&) = delete;
  atomic& operator=(const atomic&) = delete;

  T load(std::memory_order o = std::memory_order_seq_cst, loc l = loc::current()) const {
    relacy::interrupt_point();
    const T v = a_.load(relacy::order(o), relacy::where(l));
    relacy::interrupt_point();
    return v;
  }
  void store(T v, std::memory_order o = std::memory_order_seq_cst, loc l = loc::current()) {
    relacy::interrupt_point();
    a_.store(v, relacy::order(o), relacy::where(l));
    relacy::interrupt_point();
  }
  T exchange(T v, std::memory_order o = std::memory_order_seq_cst, loc l = loc::current()) {
    relacy::interrupt_point();
    const T old = a_.exchange(v, relacy::order(o), relacy::where(l));
    relacy::interrupt_point();
    return old;
  }
  bool compare_exchange_weak(T& expected, T desired, std::memory_order success, std::memory_order failure,
                             loc l = loc::current()) {
    relacy::interrupt_point();
    const bool ok = a_.compare_exchange_weak(expected, desired, relacy::order(success), relacy::where(l),
                                             relacy::order(failure), relacy::where(l));
    relacy::interrupt_point();
    return ok;
  }
  bool compare_exchange_weak(T& expected, T desired, std::memory_order o = std::memory_order_seq_cst,
                             loc l = loc::current()) {
    relacy::interrupt_point();
    const bool ok = a_.compare_exchange_weak(expected, desired, relacy::order(o), relacy::where(l));
    relacy::interrupt_point();
    return ok;
  }
  bool compare_exchange_strong(T& expected, T desired, std::memory_order o = std::memory_order_seq_cst,
                               loc l = loc::current()) {
    relacy::interrupt_point();
    const bool ok = a_.compare_exchange_strong(expected, desired, relacy::order(o), relacy::where(l));
    relacy::interrupt_point();
    return ok;
  }
  template <class U>
  T fetch_add(U v, std::memory_order o = std::memory_order_seq_cst, loc l = loc::current()) {
    relacy::interrupt_point();
    const T old = a_.fetch_add(v, relacy::order(o), relacy::where(l));
    relacy::interrupt_point();
    return old;
  }
  template <class U>
  T fetch_sub(U v, std::memory_order o = std::memory_order_seq_cst, loc l = loc::current()) {
    relacy::interrupt_point();
    const T old = a_.fetch_sub(v, relacy::order(o), relacy::where(l));
    relacy::interrupt_point();
    return old;
  }
  // std::atomic::wait as a polling loop: Relacy sees the spin and schedules others.
  void wait(T old, std::memory_order o = std::memory_order_seq_cst, loc l = loc::current()) const {
    while (load(o, l) == old) rl::yield(1, relacy::where(l));
  }
  void notify_one() noexcept {}
  void notify_all() noexcept {}

 private:
  mutable rl::atomic<T> a_;
};

class mutex {
 public:
  void lock(std::source_location l = std::source_location::current()) { m_.lock(relacy::where(l)); }
  void unlock(std::source_location l = std::source_location::current()) { m_.unlock(relacy::where(l)); }

 private:
  rl::mutex m_;
};

/// A logical clock: one millisecond per reading.
struct clock {
  using rep = std::int64_t;
  using period = std::nano;
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::time_point<clock>;
  static constexpr bool is_steady = true;
  static time_point now() noexcept { return time_point(duration(ticks += 1000000)); }
  inline static rep ticks = 0;
};

using thread_id = int;  // 0: no thread, as a default-constructed std::thread::id
inline thread_id this_thread_id() noexcept { return relacy::me() + 1; }

inline void thread_fence(std::memory_order o, std::source_location l = std::source_location::current()) {
  relacy::interrupt_point();
  rl::atomic_thread_fence(relacy::order(o), relacy::where(l));
  relacy::interrupt_point();
}
inline void compiler_fence() noexcept {}
inline void cpu_relax(std::source_location l = std::source_location::current()) {
  relacy::interrupt_point();
  rl::yield(1, relacy::where(l));
}

template <class T>
T& this_thread_value() noexcept {
  static T values[relacy::max_threads];
  static unsigned long made_in[relacy::max_threads] = {};
  const int t = relacy::me();
  if (made_in[t] != relacy::environment::generation) {
    values[t] = T{};  // forgets, not destroys: its memory was that iteration's
    made_in[t] = relacy::environment::generation;
  }
  return values[t];
}

inline void at_thread_exit(void (*fn)(void*), void* object) noexcept {
  for (auto& h : relacy::env().on_exit[relacy::me()])
    if (h.fn == nullptr) {
      h = {fn, object};
      return;
    }
  RL_ASSERT(!"hotswap relacy model: more than four thread-exit handlers on one thread");
}

inline void futex_wait(const atomic<std::uint32_t>& word, std::uint32_t expected, std::chrono::nanoseconds timeout) {
  if (timeout < std::chrono::seconds(1)) {  // bounded by design: may time out at once
    cpu_relax();
    return;
  }
  relacy::environment& e = relacy::env();
  e.bucket.lock($);
  if (word.load(std::memory_order_seq_cst) == expected) e.sleepers.wait(e.bucket, $);
  e.bucket.unlock($);
}

inline void futex_wake_all(atomic<std::uint32_t>&) {
  relacy::environment& e = relacy::env();
  e.bucket.lock($);
  e.sleepers.notify_all($);
  e.bucket.unlock($);
}

inline bool membarrier_register() noexcept { return true; }

inline void membarrier_all() {
  relacy::environment& e = relacy::env();
  rl::atomic_thread_fence(rl::mo_seq_cst, $);
  const int mine = e.request($).fetch_add(1, rl::mo_release) + 1;
  for (int t = 0; t < e.threads; ++t)
    if (t != relacy::me())
      while (e.ack[t]($).load(rl::mo_acquire) < mine) rl::yield(1, $);
  rl::atomic_thread_fence(rl::mo_seq_cst, $);
}

}  // namespace hotswap::detail
