// hotswap's own paths: calls through a slot under each policy, pins, and the
// writer side (publish, synchronize, retire-to-deleter).
#include <policies.hpp>
#include <hotswap/hotswap.hpp>

#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "common.hpp"

namespace hotswap_bench {
namespace {

using hotswap::domain_options;
using hotswap::grace_mode;
using hotswap::slot_options;

/// A domain and one slot in it, built once in main() and destroyed before it
/// returns (slot first: it retires its serving version into the domain).
template <class Domain>
struct world {
  Domain dom;
  hotswap::slot<plugin, Domain> s;
  explicit world(domain_options o, slot_options so = {}) : dom(std::move(o)), s(dom, "v1", so, 1) {}
};

domain_options with_grace(grace_mode g) {
  domain_options o;
  o.grace = g;
  return o;
}

using epoch_world = world<hotswap::domain>;
using qsbr_world = world<hotswap::qsbr_domain>;
using cds_world = world<hotswap::cds_urcu_domain>;
using mutex_world = world<hotswap::shared_mutex_domain>;

// Callers (call/*, pin/*): one world per policy, shared by its benchmarks.
std::unique_ptr<epoch_world> g_membarrier;
std::unique_ptr<epoch_world> g_fence;
std::unique_ptr<qsbr_world> g_qsbr;
std::unique_ptr<cds_world> g_cds;
std::unique_ptr<mutex_world> g_mutex;
std::unique_ptr<epoch_world> g_pins64;  // pin_shards = 64
// Writers (writer/*): each its own world, so the only records a grace period
// sees are the ones the benchmark sets up (see the idle/exited variants).
std::unique_ptr<epoch_world> g_publish;
std::unique_ptr<epoch_world> g_publish_manual;  // reclaim_mode::manual
std::unique_ptr<epoch_world> g_sync_membarrier;
std::unique_ptr<epoch_world> g_sync_idle;
std::unique_ptr<epoch_world> g_sync_idle_2us;  // membarrier_after = 2 us
std::unique_ptr<epoch_world> g_sync_exited;
std::unique_ptr<epoch_world> g_sync_fence;
std::unique_ptr<cds_world> g_sync_cds;
std::unique_ptr<qsbr_world> g_sync_qsbr;
std::unique_ptr<epoch_world> g_retire;

}  // namespace

// ---- the hot path, out of line ---------------------------------------------
//
// Exactly what bm_slot_call inlines, kept as a real symbol so its assembly can
// be read (see bench/README.md), e.g. with
//   objdump -d --no-show-raw-insn -C --disassemble=hotswap_bench_slot_call build-bench/bench/hotswap-bench-kernel

using membarrier_slot = hotswap::slot<plugin, hotswap::domain>;

extern "C" [[gnu::noinline]] int hotswap_bench_slot_call(const membarrier_slot& s, hotswap::domain::reader& r,
                                                        int x) {
  return s.call(r, [x](const plugin& p) { return call_payload(p, x); });
}

/// The floor, out of line, for the same side-by-side reading.
extern "C" [[gnu::noinline]] int hotswap_bench_virtual_call(const handler* h, int x) {
  return call_payload(*h, x);
}

namespace {

// ---- call/* --------------------------------------------------------------

/// The documented hot path: a reader handle held by the caller.
template <class Domain>
void bm_slot_call(benchmark::State& state, world<Domain>* w) {
  auto& r = w->dom.this_thread();
  int acc = state.thread_index();
  for (auto _ : state) acc = w->s.call(r, [acc](const plugin& p) { return call_payload(p, acc); });
  benchmark::DoNotOptimize(acc);
}

/// The convenience overload: finds this thread's reader on every call.
void bm_slot_call_lookup(benchmark::State& state, epoch_world* w) {
  int acc = state.thread_index();
  for (auto _ : state) acc = w->s.call([acc](const plugin& p) { return call_payload(p, acc); });
  benchmark::DoNotOptimize(acc);
}

void bm_slot_call_noinline(benchmark::State& state, epoch_world* w) {
  auto& r = w->dom.this_thread();
  int acc = state.thread_index();
  for (auto _ : state) acc = hotswap_bench_slot_call(w->s, r, acc);
  benchmark::DoNotOptimize(acc);
}

void bm_virtual_noinline(benchmark::State& state) {
  static const plugin version(1);
  int acc = state.thread_index();
  for (auto _ : state) acc = hotswap_bench_virtual_call(&version, acc);
  benchmark::DoNotOptimize(acc);
}

// ---- pin/* -----------------------------------------------------------------

/// Take a pin, call through it, drop it: the per-connection policy when a
/// connection makes one call.
void bm_pin_call(benchmark::State& state, epoch_world* w) {
  auto& r = w->dom.this_thread();
  int acc = state.thread_index();
  for (auto _ : state) {
    auto p = w->s.pin(r);
    acc = call_payload(*p, acc);
  }
  benchmark::DoNotOptimize(acc);
}

/// Pin create + drop alone: what a connection pays at open and close.
void bm_pin_create_drop(benchmark::State& state, epoch_world* w) {
  auto& r = w->dom.this_thread();
  for (auto _ : state) {
    auto p = w->s.pin(r);
    benchmark::DoNotOptimize(p);
  }
}

/// Calls through a pin held across the loop: the per-connection policy's
/// steady state (no read section, no counter).
void bm_pinned_call(benchmark::State& state, epoch_world* w) {
  const auto p = w->s.pin(w->dom.this_thread());
  int acc = state.thread_index();
  for (auto _ : state) acc = call_payload(*p, acc);
  benchmark::DoNotOptimize(acc);
}

// ---- writer/* --------------------------------------------------------------

/// A caller that runs read sections back to back until stopped. A qsbr
/// caller announces a quiescent state once per 1,000 calls, as a loop would.
template <class Domain>
background_thread busy_caller(world<Domain>* w) {
  return background_thread([w](background_thread::control ctl) {
    auto& r = w->dom.this_thread();
    int acc = 0;
    acc = w->s.call(r, [acc](const plugin& p) { return call_payload(p, acc); });
    ctl.ready();
    unsigned calls = 0;
    while (!ctl.stopping()) {
      acc = w->s.call(r, [acc](const plugin& p) { return call_payload(p, acc); });
      if constexpr (requires { r.quiescent(); }) {
        if (++calls == 1000) {
          calls = 0;
          r.quiescent();
        }
      }
    }
    benchmark::DoNotOptimize(acc);
  });
}

/// publish() with the default background reclaimer: each publish that finds
/// the retire list empty wakes the reclaimer (a futex wake, on a VM an IPI to
/// the other vCPU), and the reclaimer then frees the replaced version on the
/// other core concurrently with the next publishes.
void bm_publish(benchmark::State& state, epoch_world* w) {
  int i = 0;
  std::uint64_t refused = 0;
  for (auto _ : state) {
    if (!w->s.publish(plugin(++i))) ++refused;
  }
  w->dom.barrier();  // untimed (the loop is over): the next run starts with nothing draining
  state.counters["refused"] = static_cast<double>(refused);
}

/// publish() with reclaim_mode::manual: no reclaimer thread to wake. Every 64
/// publishes the loop calls poll() itself, so the time includes the grace
/// period and the frees, amortised, on this thread.
void bm_publish_manual(benchmark::State& state, epoch_world* w) {
  int i = 0;
  std::uint64_t refused = 0;
  for (auto _ : state) {
    if (!w->s.publish(plugin(++i))) ++refused;
    if ((i & 63) == 0) w->dom.poll();
  }
  w->dom.barrier();
  state.counters["refused"] = static_cast<double>(refused);
}

enum class extra_thread { none, idle, exited };

/// synchronize() latency while one caller runs read sections back to back.
/// `extra`: also keep a registered thread blocked (idle), or let one register
/// and exit before measuring (exited): the two cases where a grace period of
/// the epoch policy cannot see a new epoch and falls back to membarrier().
template <class Domain>
void bm_synchronize(benchmark::State& state, world<Domain>* w, extra_thread extra) {
  auto caller = busy_caller(w);
  std::optional<background_thread> idle;
  if (extra == extra_thread::idle) {
    idle.emplace([w](background_thread::control ctl) {
      auto& r = w->dom.this_thread();
      r.lock();
      r.unlock();
      ctl.ready();
      while (!ctl.stopping()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
  } else if (extra == extra_thread::exited) {
    std::thread([w] { w->s.call([](const plugin& p) { return call_payload(p, 0); }); }).join();
  }
  latency_samples samples(static_cast<std::size_t>(state.max_iterations));
  const std::uint64_t membarriers_before = w->dom.grace_statistics().membarriers;
  for (auto _ : state) {
    const auto t0 = bench_clock::now();
    w->dom.synchronize();
    const auto d = bench_clock::now() - t0;
    samples.add(d);
    state.SetIterationTime(std::chrono::duration<double>(d).count());
  }
  samples.report(state);
  // How many of this run's grace periods fell back to membarrier().
  state.counters["membarriers"] = static_cast<double>(w->dom.grace_statistics().membarriers - membarriers_before);
}

/// One retired object whose deleter stamps the time it ran.
struct retire_probe {
  bench_clock::time_point deleted;
  std::atomic<int> done{0};
};

/// Time from retire() to the deleter running on the reclaimer, with a busy
/// caller. One retire in flight at a time; the benchmark thread sleeps in a
/// futex meanwhile, so it does not take a core from the reclaimer.
void bm_retire_to_deleter(benchmark::State& state, epoch_world* w) {
  auto caller = busy_caller(w);
  static retire_probe probe;  // outlives any late notify from the reclaimer
  latency_samples samples(static_cast<std::size_t>(state.max_iterations));
  for (auto _ : state) {
    probe.done.store(0, std::memory_order_relaxed);
    const auto t0 = bench_clock::now();
    w->dom.retire(&probe, [](retire_probe* p) {
      p->deleted = bench_clock::now();
      p->done.store(1, std::memory_order_release);  // pairs with the acquire load below
      p->done.notify_one();
    });
    while (probe.done.load(std::memory_order_acquire) == 0) probe.done.wait(0, std::memory_order_acquire);
    const auto d = probe.deleted - t0;
    samples.add(d);
    state.SetIterationTime(std::chrono::duration<double>(d).count());
  }
  samples.report(state);
}

template <class Domain, class F>
benchmark::internal::Benchmark* reg(const std::string& name, F f, world<Domain>* w) {
  return benchmark::RegisterBenchmark(name.c_str(), [f, w](benchmark::State& st) { f(st, w); });
}

}  // namespace

void register_kernel_call() {
  g_membarrier = std::make_unique<epoch_world>(with_grace(grace_mode::membarrier));
  g_fence = std::make_unique<epoch_world>(with_grace(grace_mode::fence));
  g_qsbr = std::make_unique<qsbr_world>(domain_options{});
  g_cds = std::make_unique<cds_world>(domain_options{});
  g_mutex = std::make_unique<mutex_world>(domain_options{});

  call_shape(reg("call/slot/epoch_membarrier", bm_slot_call<hotswap::domain>, g_membarrier.get()));
  call_shape(reg("call/slot/epoch_fence", bm_slot_call<hotswap::domain>, g_fence.get()));
  call_shape(reg("call/slot/qsbr", bm_slot_call<hotswap::qsbr_domain>, g_qsbr.get()));
  call_shape(reg("call/slot/cds_urcu", bm_slot_call<hotswap::cds_urcu_domain>, g_cds.get()));
  call_shape(reg("call/slot/shared_mutex", bm_slot_call<hotswap::shared_mutex_domain>, g_mutex.get()));
  call_shape(reg("call/slot_tl_lookup/epoch_membarrier", bm_slot_call_lookup, g_membarrier.get()));
  reg("call/slot_noinline/epoch_membarrier", bm_slot_call_noinline, g_membarrier.get())->UseRealTime();
  benchmark::RegisterBenchmark("call/virtual_noinline", bm_virtual_noinline)->UseRealTime();
}

void register_kernel_pin() {
  slot_options wide;
  wide.pin_shards = 64;
  g_pins64 = std::make_unique<epoch_world>(with_grace(grace_mode::membarrier), wide);

  call_shape(reg("pin/pin_call/epoch_membarrier", bm_pin_call, g_membarrier.get()));
  call_shape(reg("pin/create_drop/epoch_membarrier", bm_pin_create_drop, g_membarrier.get()));
  call_shape(reg("pin/create_drop/epoch_membarrier_shards64", bm_pin_create_drop, g_pins64.get()));
  call_shape(reg("pin/pinned_call/epoch_membarrier", bm_pinned_call, g_membarrier.get()));
}

void register_kernel_writer() {
  slot_options roomy;
  roomy.max_draining = std::size_t{1} << 20;  // measure publishes, not backpressure refusals
  g_publish = std::make_unique<epoch_world>(with_grace(grace_mode::membarrier), roomy);
  domain_options manual = with_grace(grace_mode::membarrier);
  manual.reclaim = hotswap::reclaim_mode::manual;
  g_publish_manual = std::make_unique<epoch_world>(manual, roomy);
  domain_options quick = with_grace(grace_mode::membarrier);
  quick.membarrier_after = std::chrono::microseconds(2);
  g_sync_idle_2us = std::make_unique<epoch_world>(quick);
  g_sync_membarrier = std::make_unique<epoch_world>(with_grace(grace_mode::membarrier));
  g_sync_idle = std::make_unique<epoch_world>(with_grace(grace_mode::membarrier));
  g_sync_exited = std::make_unique<epoch_world>(with_grace(grace_mode::membarrier));
  g_sync_fence = std::make_unique<epoch_world>(with_grace(grace_mode::fence));
  g_sync_cds = std::make_unique<cds_world>(domain_options{});
  g_sync_qsbr = std::make_unique<qsbr_world>(domain_options{});
  g_retire = std::make_unique<epoch_world>(with_grace(grace_mode::membarrier));

  reg("writer/publish/epoch_membarrier", bm_publish, g_publish.get())->UseRealTime();
  reg("writer/publish/epoch_membarrier_manual_reclaim", bm_publish_manual, g_publish_manual.get())->UseRealTime();

  const auto sync = [](const std::string& name, auto* w, extra_thread extra, int iterations) {
    benchmark::RegisterBenchmark(name.c_str(), [w, extra](benchmark::State& st) { bm_synchronize(st, w, extra); })
        ->UseManualTime()
        ->Iterations(iterations)
        ->Unit(benchmark::kMicrosecond);
  };
  sync("writer/synchronize/epoch_membarrier", g_sync_membarrier.get(), extra_thread::none, 20000);
  sync("writer/synchronize/epoch_membarrier+idle_thread", g_sync_idle.get(), extra_thread::idle, 5000);
  sync("writer/synchronize/epoch_membarrier+idle_thread+membarrier_after_2us", g_sync_idle_2us.get(),
       extra_thread::idle, 5000);
  sync("writer/synchronize/epoch_membarrier+exited_thread", g_sync_exited.get(), extra_thread::exited, 5000);
  sync("writer/synchronize/epoch_fence", g_sync_fence.get(), extra_thread::none, 20000);
  sync("writer/synchronize/cds_urcu", g_sync_cds.get(), extra_thread::none, 5000);
  sync("writer/synchronize/qsbr+caller_announcing_every_1000_calls", g_sync_qsbr.get(), extra_thread::none, 5000);

  reg("writer/retire_to_deleter/epoch_membarrier", bm_retire_to_deleter, g_retire.get())
      ->UseManualTime()
      ->Iterations(3000)
      ->Unit(benchmark::kMicrosecond);
}

void teardown_kernel() {
  for (auto* w : {&g_membarrier, &g_fence, &g_pins64, &g_publish, &g_publish_manual, &g_sync_membarrier, &g_sync_idle,
                  &g_sync_idle_2us, &g_sync_exited, &g_sync_fence, &g_retire})
    w->reset();
  g_qsbr.reset();
  g_sync_qsbr.reset();
  g_cds.reset();
  g_sync_cds.reset();
  g_mutex.reset();
}

}  // namespace hotswap_bench
