// Standard-library baselines: the floor, the unsafe floor, shared_ptr-based
// swapping, locks, and one shared atomic counter (what pins must not be).
#include <atomic>
#include <memory>
#include <mutex>
#include <shared_mutex>

#include "common.hpp"

namespace hotswap_bench {
namespace {

const plugin g_version(1);

std::atomic<const handler*> g_atomic{&g_version};
std::atomic<std::shared_ptr<const handler>> g_atomic_sp;
std::shared_ptr<const handler> g_plain_sp;  // for std::atomic_load(&sp)
std::mutex g_mutex;
std::shared_mutex g_shared_mutex;
const handler* g_locked = &g_version;  // guarded by the two locks above

alignas(64) std::atomic<std::uint64_t> g_counter{0};

/// The floor: a virtual call through a pointer the compiler cannot see
/// through (opaque() in call_payload, every iteration).
void bm_virtual_raw(benchmark::State& state) {
  const handler* h = &g_version;
  int acc = state.thread_index();
  for (auto _ : state) acc = call_payload(*h, acc);
  benchmark::DoNotOptimize(acc);
}

/// The unsafe floor: an acquire load of a shared pointer, then the call. What
/// a slot costs without any reclamation (the old version must leak).
void bm_atomic_acquire(benchmark::State& state) {
  int acc = state.thread_index();
  for (auto _ : state) acc = call_payload(*g_atomic.load(std::memory_order_acquire), acc);
  benchmark::DoNotOptimize(acc);
}

void bm_atomic_shared_ptr(benchmark::State& state) {
  int acc = state.thread_index();
  for (auto _ : state) {
    const std::shared_ptr<const handler> sp = g_atomic_sp.load(std::memory_order_acquire);
    acc = call_payload(*sp, acc);
  }
  benchmark::DoNotOptimize(acc);
}

// std::atomic_load(const std::shared_ptr*) is deprecated in C++20 in favour
// of std::atomic<std::shared_ptr>; it is measured on purpose, as the API much
// existing code still uses.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
void bm_atomic_load_shared_ptr(benchmark::State& state) {
  int acc = state.thread_index();
  for (auto _ : state) {
    const std::shared_ptr<const handler> sp = std::atomic_load(&g_plain_sp);
    acc = call_payload(*sp, acc);
  }
  benchmark::DoNotOptimize(acc);
}
#pragma GCC diagnostic pop

void bm_mutex(benchmark::State& state) {
  int acc = state.thread_index();
  for (auto _ : state) {
    std::lock_guard lock(g_mutex);
    acc = call_payload(*g_locked, acc);
  }
  benchmark::DoNotOptimize(acc);
}

void bm_shared_mutex(benchmark::State& state) {
  int acc = state.thread_index();
  for (auto _ : state) {
    std::shared_lock lock(g_shared_mutex);
    acc = call_payload(*g_locked, acc);
  }
  benchmark::DoNotOptimize(acc);
}

/// One counter shared by every thread, incremented and decremented with the
/// orders a pin uses (relaxed acquire, release drop).
void bm_shared_counter(benchmark::State& state) {
  for (auto _ : state) {
    g_counter.fetch_add(1, std::memory_order_relaxed);
    g_counter.fetch_sub(1, std::memory_order_release);
  }
}

}  // namespace

void register_call_baselines() {
  // A control block of its own, like a real plugin's.
  g_atomic_sp.store(std::make_shared<const plugin>(1));
  g_plain_sp = std::make_shared<const plugin>(1);

  call_shape(benchmark::RegisterBenchmark("call/virtual_raw", bm_virtual_raw));
  call_shape(benchmark::RegisterBenchmark("call/atomic_acquire", bm_atomic_acquire));
  call_shape(benchmark::RegisterBenchmark("call/atomic_shared_ptr", bm_atomic_shared_ptr));
  call_shape(benchmark::RegisterBenchmark("call/atomic_load_shared_ptr", bm_atomic_load_shared_ptr));
  call_shape(benchmark::RegisterBenchmark("call/mutex", bm_mutex));
  call_shape(benchmark::RegisterBenchmark("call/shared_mutex", bm_shared_mutex));
}

void register_pin_baselines() {
  call_shape(benchmark::RegisterBenchmark("pin/shared_atomic_counter", bm_shared_counter));
}

}  // namespace hotswap_bench
