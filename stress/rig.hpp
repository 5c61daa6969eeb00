// The runner: R callers call through one backend while W swappers publish new
// versions, for a bounded time, measuring and checking every call.
//
// One run = one (scenario, backend, policy, swap interval). The runner is a
// template over both, so a call is inlined end to end: no virtual call sits
// between a caller and the mechanism it measures. Type erasure happens once per
// run (scenario_entry::runner::run).
#pragma once

#include <pthread.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

#include <hotswap/options.hpp>

#include "backend.hpp"
#include "clock.hpp"
#include "histogram.hpp"
#include "membarrier_count.hpp"
#include "probe.hpp"
#include "scenario.hpp"

namespace hotswap::stress {

using hotswap::call_policy;
enum class run_mode { latency, throughput };

inline std::string_view to_string(call_policy p) { return p == call_policy::per_call ? "per-call" : "pinned"; }
inline std::string_view to_string(run_mode m) { return m == run_mode::latency ? "latency" : "throughput"; }

struct run_config {
  std::string scenario = "memory";
  std::string backend;
  call_policy policy = call_policy::per_call;
  run_mode mode = run_mode::latency;
  unsigned readers = 1;
  unsigned swappers = 1;
  double seconds = 3.0;
  double warmup = 0.3;
  std::optional<std::uint64_t> swap_interval_us = 100;  ///< nullopt: no swaps; 0: flat out
  std::uint64_t after_swap_window_ns = 50'000;
  unsigned batch = 1;      ///< calls per timed sample (1 in latency mode)
  unsigned session = 100;  ///< calls per pinned session
  backend_config backend_cfg;
  scenario_config scenario_cfg;
  bool progress = false;   ///< live one-line display (stdout is a TTY)
  /// --affinity split: caller t runs on caller_cpus[t % size]; the main thread
  /// (and so swappers and reclaimer threads, which inherit its mask) was
  /// already moved to the other CPUs. Empty: the scheduler decides.
  std::vector<int> caller_cpus;

  bool swapping() const { return swappers > 0 && swap_interval_us.has_value(); }
  std::string swap_label() const {
    if (!swapping()) return "off";
    if (*swap_interval_us == 0) return "max";
    return std::to_string(*swap_interval_us) + "us";
  }
};

struct run_result {
  run_config config;
  bool skipped = false;
  std::string skip_reason;
  double elapsed_s = 0;
  std::uint64_t calls = 0, issued = 0, completed = 0;
  std::uint64_t swaps = 0, refused = 0;
  histogram steady, after_swap;     ///< caller latency (per call, or per-call mean of a batch)
  histogram publish, grace, reclaim, teardown;
  std::uint64_t peak_backlog = 0;
  std::size_t cap = 0;
  std::int64_t grace_periods = -1;        ///< as the backend counts them (-1: not observable)
  std::int64_t membarriers = -1;          ///< as the backend counts them
  std::int64_t membarrier_syscalls = -1;  ///< counted at the syscall, whoever issued them
  violation_counts violations{};
  /// CPU the callers got while measuring, over readers x elapsed: below 1 when
  /// anything (our writers, or other work on a shared machine) took their CPU.
  double caller_cpu_share = 0;
  std::uint64_t caller_preemptions = 0;  ///< involuntary context switches of the callers

  histogram latency() const {
    histogram all = steady;
    all += after_swap;
    return all;
  }
  std::uint64_t total_violations() const {
    std::uint64_t n = 0;
    for (auto v : violations) n += v;
    return n;
  }
  bool passed() const { return !skipped && total_violations() == 0; }
};

namespace detail {

enum phase : int { starting = 0, warming = 1, measuring = 2, stopping = 3 };

struct control {
  alignas(64) std::atomic<int> phase{starting};
  std::atomic<unsigned> ready{0};
  std::uint64_t window_ticks = 0;
};

/// What one caller thread hands back.
struct caller_out {
  histogram steady, after_swap;
  std::uint64_t issued = 0, completed = 0;
  violation_counts violations{};
  double cpu_s = 0;                 ///< CPU time the caller thread got while measuring
  std::uint64_t preempted = 0;      ///< involuntary context switches while measuring
};

/// CPU time of the calling thread, and its involuntary context switches.
inline std::pair<double, std::uint64_t> thread_cpu() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  rusage ru{};
  ::getrusage(RUSAGE_THREAD, &ru);
  return {static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9,
          static_cast<std::uint64_t>(ru.ru_nivcsw)};
}

/// Per-thread call count for the live display, one cache line each.
struct alignas(64) live_count {
  std::atomic<std::uint64_t> calls{0};
  std::atomic<std::uint64_t> violations{0};
};

inline void wait_for_start(control& ctl) {
  ctl.ready.fetch_add(1, std::memory_order_release);
  int p = ctl.phase.load(std::memory_order_acquire);
  while (p == starting) {
    ctl.phase.wait(p, std::memory_order_acquire);
    p = ctl.phase.load(std::memory_order_acquire);
  }
}

/// Callers count with plain locals; they are cleared when measuring starts.
struct caller_state {
  histogram steady, after_swap;
  std::uint64_t issued = 0, completed = 0;
  std::uint64_t dead = 0, backwards = 0, stale = 0, changed = 0;
  std::uint64_t sink = 0;
  std::pair<double, std::uint64_t> cpu_at_start{};

  void clear() {
    steady.clear();
    after_swap.clear();
    issued = completed = dead = backwards = stale = changed = 0;
  }
  void record(std::uint64_t t0, std::uint64_t t1, std::uint64_t per, const run_probe& probe, std::uint64_t window) {
    const std::uint64_t mark = probe.last_swap_tick.load(std::memory_order_relaxed);
    const std::uint64_t v = (t1 - t0) / per;
    // A sample overlapping [mark, mark + window] is "after a swap".
    if (t1 >= mark && t0 <= mark + window) after_swap.record(v);
    else steady.record(v);
  }
  caller_out out() && {
    const auto cpu = thread_cpu();
    caller_out o{std::move(steady), std::move(after_swap), issued, completed, {}, cpu.first - cpu_at_start.first,
                 cpu.second - cpu_at_start.second};
    o.violations[static_cast<std::size_t>(violation::dead_version)] = dead;
    o.violations[static_cast<std::size_t>(violation::went_backwards)] = backwards;
    o.violations[static_cast<std::size_t>(violation::stale_version)] = stale;
    o.violations[static_cast<std::size_t>(violation::pin_changed)] = changed;
    o.violations[static_cast<std::size_t>(violation::lost_call)] = issued - completed;
    return o;
  }
};

/// One caller thread. Every call: load the age floor (acquire) BEFORE entering
/// the section, call, then check the canary, the floor and the order.
template <class S, class B>
caller_out caller_main(B& backend, const S& scenario, run_probe& probe, control& ctl, const run_config& cfg,
                       live_count& live) {
  using V = typename S::version;
  typename B::caller h(backend);
  wait_for_start(ctl);
  caller_state st;
  const std::uint64_t window = ctl.window_ticks;
  const bool latency = cfg.mode == run_mode::latency;
  const unsigned batch = latency ? 1U : std::max(1U, cfg.batch);
  const unsigned session = std::max(1U, cfg.session);
  int phase = ctl.phase.load(std::memory_order_acquire);
  std::uint64_t last = 0, i = 0;

  // Returns false when the run is over; clears the counters when it starts.
  auto keep_going = [&] {
    const int p = ctl.phase.load(std::memory_order_acquire);
    if (p != phase) {
      if (p == stopping) return false;
      if (p == measuring) {
        st.clear();
        st.cpu_at_start = thread_cpu();
      }
      phase = p;
    }
    live.calls.store(st.completed, std::memory_order_relaxed);
    live.violations.store(st.dead + st.backwards + st.stale + st.changed + (st.issued - st.completed),
                          std::memory_order_relaxed);
    return true;
  };

  if (cfg.policy == call_policy::per_call) {
    // One call: a read section around one load of the current version.
    auto one = [&](std::uint64_t floor) {
      std::uint64_t seen = 0;
      bool alive = false;
      ++st.issued;
      ++i;
      try {
        h.call([&](const V& v) {
          st.sink += scenario.call(v, i);
          seen = v.number;
          alive = v.alive();
        });
      } catch (...) {
        return;  // counted as lost: issued but not completed
      }
      ++st.completed;
      st.dead += !alive;
      st.backwards += seen < last;
      st.stale += seen < floor;
      last = seen;
    };
    if (latency) {
      while ((i & 63) != 0 || keep_going()) {
        const std::uint64_t floor = probe.floor.load(std::memory_order_acquire);  // pairs with raise_floor
        const std::uint64_t t0 = cycle_clock::start();
        one(floor);
        const std::uint64_t t1 = cycle_clock::stop();
        st.record(t0, t1, 1, probe, window);
      }
    } else {
      while (keep_going()) {
        const std::uint64_t t0 = cycle_clock::start();
        for (unsigned k = 0; k < batch; ++k) one(probe.floor.load(std::memory_order_acquire));
        const std::uint64_t t1 = cycle_clock::stop();
        st.record(t0, t1, batch, probe, window);
      }
    }
  } else {
    // A session: pin, `session` calls through the pin, release. The first
    // call's time includes taking the pin, the last one's dropping it.
    while (keep_going()) {
      const std::uint64_t floor = probe.floor.load(std::memory_order_acquire);  // pairs with raise_floor
      std::uint64_t t0 = cycle_clock::start();
      const std::uint64_t session_start = t0;
      std::uint64_t first = 0;
      st.issued += session;
      try {
        auto pinned = h.pin();
        first = (*pinned).number;
        st.stale += first < floor;
        st.backwards += first < last;
        last = first;
        for (unsigned k = 0; k < session; ++k) {
          const V& v = *pinned;
          st.sink += scenario.call(v, i++);
          st.changed += v.number != first;
          st.dead += !v.alive();
          if (k + 1 == session) pinned.reset();
          ++st.completed;
          if (latency) {
            const std::uint64_t t1 = cycle_clock::stop();
            st.record(t0, t1, 1, probe, window);
            if (k + 1 != session) t0 = cycle_clock::start();
          }
        }
      } catch (...) {
      }
      if (!latency) st.record(session_start, cycle_clock::stop(), session, probe, window);
    }
  }
  static std::atomic<std::uint64_t> keep;
  keep.fetch_add(st.sink, std::memory_order_relaxed);  // the work must not be optimised away
  return std::move(st).out();
}

inline void pin_this_thread(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set);
}

inline void sleep_until_ns(std::uint64_t steady_ns) {
  timespec ts{static_cast<time_t>(steady_ns / 1'000'000'000), static_cast<long>(steady_ns % 1'000'000'000)};
  while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) != 0) {
  }
}
inline std::uint64_t steady_now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

/// What the swappers share: they publish one at a time, so version numbers
/// follow publish order (every backend serialises writers anyway).
struct swap_books {
  std::mutex mutex;
  std::uint64_t last_number = 1;  // the initial version is 1
  std::uint64_t swaps = 0, refused = 0, peak_backlog = 0, over_cap = 0;
};

template <class S, class B>
void swapper_main(B& backend, S& scenario, run_probe& probe, control& ctl, const run_config& cfg,
                  swap_books& books) {
  using V = typename S::version;
  ::prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);  // wake within ~1 us of the deadline, not 50 us
  backend.attach_writer();
  wait_for_start(ctl);
  const std::uint64_t interval = *cfg.swap_interval_us * 1000;
  std::uint64_t next = steady_now_ns();
  std::optional<V> pending;
  int phase = warming;
  bool retry = false;
  for (;;) {
    const int p = ctl.phase.load(std::memory_order_acquire);
    if (p == stopping) break;
    if (p != phase) phase = p;
    if (retry) {
      // Refused (backpressure): wait for room where the backend can say when
      // there is some (asleep until its reclaimer frees a version); otherwise
      // give the reclaimer a moment. Then try again.
      if constexpr (requires { backend.wait_for_room(); }) backend.wait_for_room();
      else sleep_until_ns(steady_now_ns() + 20'000);
    } else if (interval != 0) {
      const std::uint64_t now = steady_now_ns();
      next += interval;
      if (next + interval < now) next = now;  // fell behind: do not burst to catch up
      if (next > now) sleep_until_ns(next);
    }
    if (!pending) pending.emplace(scenario.make());  // built before publish, outside the books
    std::lock_guard lock(books.mutex);
    const std::uint64_t n = books.last_number + 1;
    pending->number = n;
    const std::uint64_t t0 = cycle_clock::now();
    probe.retired_at.note(n - 1, t0);
    // Relaxed: the publish below (release) carries it to callers that see `n`.
    const std::uint64_t previous_mark = probe.last_swap_tick.load(std::memory_order_relaxed);
    probe.last_swap_tick.store(t0, std::memory_order_relaxed);
    const bool ok = backend.publish(std::move(*pending));
    const std::uint64_t t1 = cycle_clock::now();
    if (!ok) {
      probe.last_swap_tick.store(previous_mark, std::memory_order_relaxed);  // nothing was swapped
      probe.retired_at.forget(n - 1);
      if (phase == measuring) ++books.refused;
      retry = true;
      continue;
    }
    retry = false;
    pending.reset();
    books.last_number = n;
    probe.versions_retired.fetch_add(1, std::memory_order_relaxed);
    probe.published.store(n, std::memory_order_release);  // pairs with grace_begin()
    probe.publish.record(t1 - t0);
    const std::uint64_t backlog = backend.backlog();
    books.peak_backlog = std::max(books.peak_backlog, backlog);
    if (backend.cap() != 0 && backlog > backend.cap()) ++books.over_cap;
    if (phase == measuring) ++books.swaps;
  }
  backend.detach_writer();
}

}  // namespace detail

/// One run of scenario S on backend template BT.
template <scenario S, template <class> class BT>
run_result run(const run_config& cfg) {
  using V = typename S::version;
  using B = BT<V>;
  static_assert(backend<B, V>, "see backend.hpp for what a backend provides");
  using namespace std::chrono;

  run_result res;
  res.config = cfg;
  auto probe = std::make_unique<run_probe>();
  S scenario(cfg.scenario_cfg, *probe);
  {
    std::unique_ptr<B> backend;
    try {
      V first = scenario.make();
      first.number = 1;
      backend = std::make_unique<B>(cfg.backend_cfg, *probe, std::move(first));
    } catch (const std::exception& e) {
      res.skipped = true;
      res.skip_reason = e.what();
      return res;
    }
    probe->published.store(1, std::memory_order_release);

    detail::control ctl;
    ctl.window_ticks = cycle_clock::from_ns(static_cast<double>(cfg.after_swap_window_ns));
    const unsigned swappers = cfg.swapping() ? cfg.swappers : 0;
    std::vector<detail::caller_out> outs(cfg.readers);
    std::vector<detail::live_count> live(cfg.readers);
    detail::swap_books books;
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < cfg.readers; ++t)
      threads.emplace_back([&, t] {
        if (!cfg.caller_cpus.empty()) detail::pin_this_thread(cfg.caller_cpus[t % cfg.caller_cpus.size()]);
        outs[t] = detail::caller_main<S, B>(*backend, scenario, *probe, ctl, cfg, live[t]);
      });
    for (unsigned t = 0; t < swappers; ++t)
      threads.emplace_back([&] { detail::swapper_main<S, B>(*backend, scenario, *probe, ctl, cfg, books); });

    while (ctl.ready.load(std::memory_order_acquire) < threads.size()) std::this_thread::sleep_for(milliseconds(1));
    ctl.phase.store(detail::warming, std::memory_order_release);
    ctl.phase.notify_all();
    std::this_thread::sleep_for(duration<double>(cfg.warmup));

    // Measuring starts: writer-side histograms and counters restart here.
    probe->grace.clear();
    probe->reclaim.clear();
    probe->teardown.clear();
    probe->publish.clear();
    const backend_stats stats0 = backend->stats();
    const std::int64_t mb0 = membarrier_syscalls();
    std::uint64_t swaps_before = 0;
    {
      std::lock_guard lock(books.mutex);
      swaps_before = books.swaps;
      books.peak_backlog = backend->backlog();
      books.over_cap = 0;
    }
    const auto start = steady_clock::now();
    ctl.phase.store(detail::measuring, std::memory_order_release);

    const auto deadline = start + duration_cast<steady_clock::duration>(duration<double>(cfg.seconds));
    std::uint64_t peak_sampled = 0;
    for (auto now = steady_clock::now(); now < deadline; now = steady_clock::now()) {
      std::this_thread::sleep_for(std::min<steady_clock::duration>(deadline - now, milliseconds(100)));
      peak_sampled = std::max<std::uint64_t>(peak_sampled, backend->backlog());
      if (cfg.progress) {
        std::uint64_t calls = 0;
        for (auto& l : live) calls += l.calls.load(std::memory_order_relaxed);
        const double el = duration<double>(steady_clock::now() - start).count();
        std::uint64_t swaps = 0;
        {
          std::lock_guard lock(books.mutex);
          swaps = books.swaps - swaps_before;
        }
        std::uint64_t bad = 0;
        for (auto& v : probe->violations) bad += v.load(std::memory_order_relaxed);
        for (auto& l : live) bad += l.violations.load(std::memory_order_relaxed);
        std::printf("\r\033[K  %-20s %-8s swaps %-5s %5.1f/%.1f s  calls %8.2fM (%7.2fM/s)  swaps %-8llu backlog %-4zu violations %llu",
                    std::string(B::name).c_str(), std::string(to_string(cfg.policy)).c_str(),
                    cfg.swap_label().c_str(), el, cfg.seconds, static_cast<double>(calls) / 1e6,
                    static_cast<double>(calls) / 1e6 / std::max(el, 1e-9), static_cast<unsigned long long>(swaps),
                    backend->backlog(), static_cast<unsigned long long>(bad));
        std::fflush(stdout);
      }
    }
    ctl.phase.store(detail::stopping, std::memory_order_release);
    const auto stop = steady_clock::now();
    const backend_stats stats1 = backend->stats();
    const std::int64_t mb1 = membarrier_syscalls();
    res.grace = probe->grace.snapshot();
    res.teardown = probe->teardown.snapshot();
    res.publish = probe->publish.snapshot();
    for (auto& t : threads) t.join();
    if (cfg.progress) {
      std::printf("\r\033[K");
      std::fflush(stdout);
    }

    res.elapsed_s = duration<double>(stop - start).count();
    double cpu = 0;
    for (auto& o : outs) {
      cpu += o.cpu_s;
      res.caller_preemptions += o.preempted;
      res.steady += o.steady;
      res.after_swap += o.after_swap;
      res.issued += o.issued;
      res.completed += o.completed;
      for (std::size_t k = 0; k < violation_kinds; ++k) res.violations[k] += o.violations[k];
    }
    res.calls = res.completed;
    res.caller_cpu_share = cpu / (static_cast<double>(cfg.readers) * std::max(res.elapsed_s, 1e-9));
    res.swaps = books.swaps - swaps_before;
    res.refused = books.refused;
    res.peak_backlog = std::max(books.peak_backlog, peak_sampled);
    res.cap = backend->cap();
    res.violations[static_cast<std::size_t>(violation::over_cap)] += books.over_cap;
    auto delta = [](std::int64_t a, std::int64_t b) { return a < 0 || b < 0 ? -1 : b - a; };
    res.grace_periods = delta(stats0.grace_periods, stats1.grace_periods);
    res.membarriers = delta(stats0.membarriers, stats1.membarriers);
    res.membarrier_syscalls = delta(mb0, mb1);

    backend->drain();  // everything retired during the run is reclaimed (and timed)
    res.reclaim = probe->reclaim.snapshot();
  }  // the backend goes: the serving version is destroyed too

  for (std::size_t k = 0; k < violation_kinds; ++k)
    res.violations[k] += probe->violations[k].load(std::memory_order_relaxed);
  const std::uint64_t created = probe->versions_created.load(), destroyed = probe->versions_destroyed.load();
  if (created != destroyed) res.violations[static_cast<std::size_t>(violation::leaked)] += created - destroyed;
  return res;
}

/// What `--list` and the final report say about a backend.
struct backend_info {
  std::string_view name;
  std::string_view description;
  std::string_view tsan_note;  ///< non-empty: left out of `all` under TSan, and why
  bool self_test;              ///< deliberately broken: never part of `all`
};

/// A backend template (backend.hpp) as a list element.
template <template <class> class... BT>
struct backend_list {};

/// One scenario and the backends it runs on, each with its runner. A scenario
/// source file (scenarios/NAME.cpp) instantiates the rig for exactly the
/// backends it lists, so one scenario's headers never reach another's file.
struct scenario_entry {
  std::string_view name;
  std::string_view description;
  struct runner {
    backend_info backend;
    run_result (*run)(const run_config&);
  };
  std::vector<runner> runners;
};

namespace detail {
template <class B>
constexpr bool is_self_test() {
  if constexpr (requires { B::self_test; }) return B::self_test;
  else return false;
}
}  // namespace detail

template <scenario S, template <class> class... BT>
scenario_entry make_scenario_entry(backend_list<BT...>) {
  return {S::name, S::description,
          {{{BT<typename S::version>::name, BT<typename S::version>::description, BT<typename S::version>::tsan_note,
             detail::is_self_test<BT<typename S::version>>()},
            &run<S, BT>}...}};
}

}  // namespace hotswap::stress
