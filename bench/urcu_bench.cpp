// liburcu's membarrier flavour (urcu-memb), the peer our call path must match.
// _LGPL_SOURCE inlines its read side (a thread-local store and a compiler
// barrier), which is how a performance-minded user would build it: the best
// case for liburcu, not a strawman.
#define _LGPL_SOURCE
#include <urcu/urcu-memb.h>

#include <atomic>
#include <thread>

#include "common.hpp"

namespace hotswap_bench {
namespace {

plugin g_urcu_version(1);
plugin* g_urcu_ptr = &g_urcu_version;  // the RCU-protected pointer

/// Registers the calling thread with urcu-memb for its lifetime.
struct urcu_registration {
  urcu_registration() { urcu_memb_register_thread(); }
  ~urcu_registration() { urcu_memb_unregister_thread(); }
  urcu_registration(const urcu_registration&) = delete;
  urcu_registration& operator=(const urcu_registration&) = delete;
};

[[gnu::always_inline]] inline int urcu_call(int x) {
  urcu_memb_read_lock();
  const plugin* p = rcu_dereference(g_urcu_ptr);
  const int y = call_payload(*p, x);
  urcu_memb_read_unlock();
  return y;
}

void bm_urcu_call(benchmark::State& state) {
  const urcu_registration reg;
  int acc = state.thread_index();
  for (auto _ : state) acc = urcu_call(acc);
  benchmark::DoNotOptimize(acc);
}

background_thread urcu_busy_caller() {
  return background_thread([](background_thread::control ctl) {
    const urcu_registration reg;
    int acc = urcu_call(0);
    ctl.ready();
    while (!ctl.stopping()) acc = urcu_call(acc);
    benchmark::DoNotOptimize(acc);
  });
}

void bm_urcu_synchronize(benchmark::State& state) {
  auto caller = urcu_busy_caller();
  latency_samples samples(static_cast<std::size_t>(state.max_iterations));
  for (auto _ : state) {
    const auto t0 = bench_clock::now();
    urcu_memb_synchronize_rcu();
    const auto d = bench_clock::now() - t0;
    samples.add(d);
    state.SetIterationTime(std::chrono::duration<double>(d).count());
  }
  samples.report(state);
}

struct urcu_probe {
  rcu_head head;  // first member: the callback gets a pointer to it
  bench_clock::time_point deleted;
  std::atomic<int> done{0};
};
urcu_probe g_probe;  // static: outlives any late notify from the call_rcu thread

/// Time from call_rcu() to the callback running on liburcu's call_rcu thread.
void bm_urcu_call_rcu(benchmark::State& state) {
  auto caller = urcu_busy_caller();
  const urcu_registration reg;  // call_rcu() takes a read lock internally
  latency_samples samples(static_cast<std::size_t>(state.max_iterations));
  for (auto _ : state) {
    g_probe.done.store(0, std::memory_order_relaxed);
    const auto t0 = bench_clock::now();
    urcu_memb_call_rcu(&g_probe.head, [](rcu_head* h) {
      auto* p = reinterpret_cast<urcu_probe*>(h);  // standard layout, head first
      p->deleted = bench_clock::now();
      p->done.store(1, std::memory_order_release);  // pairs with the acquire load below
      p->done.notify_one();
    });
    while (g_probe.done.load(std::memory_order_acquire) == 0) g_probe.done.wait(0, std::memory_order_acquire);
    const auto d = g_probe.deleted - t0;
    samples.add(d);
    state.SetIterationTime(std::chrono::duration<double>(d).count());
  }
  samples.report(state);
}

}  // namespace

void register_urcu_call() { call_shape(benchmark::RegisterBenchmark("call/liburcu_memb", bm_urcu_call)); }

void register_urcu_writer() {
  benchmark::RegisterBenchmark("writer/synchronize/liburcu_memb", bm_urcu_synchronize)
      ->UseManualTime()
      ->Iterations(3000)
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("writer/retire_to_deleter/liburcu_call_rcu", bm_urcu_call_rcu)
      ->UseManualTime()
      ->Iterations(200)
      ->Unit(benchmark::kMicrosecond);
}

}  // namespace hotswap_bench
