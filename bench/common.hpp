// Shared pieces of hotswap-bench-kernel: the payload every variant calls, the
// helpers that keep the compiler honest, and the latency recorder used by the
// writer-side benchmarks.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <thread>
#include <utility>
#include <vector>

namespace hotswap_bench {

// ---- payload ------------------------------------------------------------

/// The interface a plugin exports: one virtual function.
struct handler {
  virtual ~handler();
  virtual int handle(int x) const noexcept = 0;
};

/// The version every slot and baseline holds. handle() is defined in
/// payload.cpp, so no translation unit that calls it can see its body.
struct plugin final : handler {
  explicit plugin(int k) noexcept : k(k) {}
  int handle(int x) const noexcept override;
  int k;
};

/// Makes `p` opaque to the optimiser at zero instructions: after this the
/// compiler knows nothing about the pointee's dynamic type (no
/// devirtualisation, speculative or not) and cannot hoist the vtable load out
/// of the loop, because the asm "changes" p on every iteration.
///
/// Not benchmark::DoNotOptimize: on GCC that one uses a "+m,r" constraint and
/// picks memory, which spills the pointer to the stack and reloads it (a
/// store-forwarding round trip, ~1.5 ns on the dependency chain of every
/// variant), and its "memory" clobber forces everything else out of registers.
/// That would inflate the floor and flatter every ratio.
template <class T>
[[gnu::always_inline]] inline void opaque(T*& p) noexcept {
  asm volatile("" : "+r"(p));
}

/// The call every variant makes once it holds a version: a virtual call the
/// compiler must really perform.
[[gnu::always_inline]] inline int call_payload(const handler& version, int x) noexcept {
  const handler* h = &version;
  opaque(h);
  return h->handle(x);
}

// ---- latency recording ----------------------------------------------------

using bench_clock = std::chrono::steady_clock;

/// Per-iteration timings recorded by the benchmark itself: Google Benchmark
/// only reports means, the writer side needs percentiles.
class latency_samples {
 public:
  explicit latency_samples(std::size_t expected) { ns_.reserve(expected); }

  void add(bench_clock::duration d) {
    ns_.push_back(static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()));
  }

  /// Sets p50/p99/p99.9/max (microseconds) as counters of this run. With
  /// repetitions, the JSON's aggregates then hold e.g. the median of p99s.
  void report(benchmark::State& state) {
    if (ns_.empty()) return;
    std::sort(ns_.begin(), ns_.end());
    state.counters["p50_us"] = percentile(0.50) / 1e3;
    state.counters["p99_us"] = percentile(0.99) / 1e3;
    state.counters["p999_us"] = percentile(0.999) / 1e3;
    state.counters["max_us"] = ns_.back() / 1e3;
    state.counters["samples"] = static_cast<double>(ns_.size());
  }

 private:
  // Nearest rank: the smallest sample with at least q of all samples <= it.
  double percentile(double q) const {
    const auto n = static_cast<double>(ns_.size());
    auto rank = static_cast<std::size_t>(std::ceil(q * n));
    rank = std::clamp<std::size_t>(rank, 1, ns_.size());
    return ns_[rank - 1];
  }

  std::vector<double> ns_;
};

/// A thread that runs `body(stop)` until destroyed. The constructor returns
/// once the body has called ready(), i.e. once the thread is really busy.
class background_thread {
 public:
  struct control {
    const std::atomic<bool>& stop;
    std::atomic<bool>& started;
    bool stopping() const noexcept { return stop.load(std::memory_order_relaxed); }
    void ready() noexcept { started.store(true, std::memory_order_release); }
  };

  template <class Body>
  explicit background_thread(Body body)
      : thread_([this, body = std::move(body)]() mutable { body(control{stop_, started_}); }) {
    while (!started_.load(std::memory_order_acquire)) std::this_thread::yield();
  }
  background_thread(const background_thread&) = delete;
  background_thread& operator=(const background_thread&) = delete;
  ~background_thread() {
    stop_.store(true, std::memory_order_relaxed);
    thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<bool> started_{false};
  std::thread thread_;  // last: starts after the flags exist
};

// ---- registration ----------------------------------------------------------

/// The caller-side shape shared by every throughput benchmark: 1 and 2
/// threads, wall-clock time (so 2 threads report aggregate throughput).
inline benchmark::internal::Benchmark* call_shape(benchmark::internal::Benchmark* b) {
  return b->Threads(1)->Threads(2)->UseRealTime();
}

// Registration entry points. main.cpp calls them group by group, so the
// console output reads call/*, then pin/*, then writer/*.
void init_cds();                  // cds_bench.cpp: libcds singletons, before any thread attaches
void register_call_baselines();   // baselines_bench.cpp
void register_pin_baselines();
void register_cds_call();         // cds_bench.cpp
void register_urcu_call();        // urcu_bench.cpp
void register_urcu_writer();
void register_kernel_call();      // kernel_bench.cpp
void register_kernel_pin();
void register_kernel_writer();
void teardown_kernel();           // destroys slots and domains before main returns

}  // namespace hotswap_bench
