// Modules: what a swap of real code costs, and what a call through a slot costs.
//
// This one source is built three times (bench/module_bench.cmake): twice as a
// small plugin (HOTSWAP_BENCH_PLUGIN, versions 1 and 2) and once as the
// benchmark, which swaps the two builds back and forth.
//
//   BM_swap_end_to_end/<shadow>     read + hash + ELF, metadata and seal checks + copy
//                                   (+fsync) + dlopen + startup + publish; p50/p90/p99
//                                   in counters; *_preflight: plus the child-process
//                                   preflight (spawn, dlopen, hooks, report)
//   BM_drain_to_unload              swap returned -> old version shut down, dlclosed,
//                                   verified unmapped, copy removed
//   BM_sustained_swaps/callers:N    swaps/s while N threads call through the slot
//   BM_call_*                       a call into the plugin: direct function pointer
//                                   vs through the slot (held reader, looked-up
//                                   reader) vs through a pin; `add` is a one-line
//                                   function, `mix` does ~50 ns of work
//   BM_call_direct_pick_add         the floor of two versions side by side: v1's or v2's
//                                   function picked per key by the canary's hash, no slot
//   BM_call_slot_routed_add         the keyed call through the module slot (call_routed)
//                                   with no canary: what a canary-ready host pays
//   BM_call_canary_*                a call through the canary (canary.hpp): none running,
//                                   running at weight_bp (a hash and a compare per call),
//                                   and the host's per-call health report
//   BM_call_*_noinline              the out-of-line copies below (hotswap_bench_*_call),
//                                   whose assembly scripts/bench_canary_call.sh prints
//                                   side by side
#include <hotswap/module/plugin.h>

#include <cstdint>

typedef struct bench_api {
  uint64_t (*add)(uint64_t a, uint64_t b);
  uint64_t (*mix)(uint64_t x, uint64_t rounds);
  uint64_t (*version)(void);
} bench_api;
HOTSWAP_DECLARE_INTERFACE(bench_api, "hotswap.bench", 1)

#ifdef HOTSWAP_BENCH_PLUGIN
// ---- the plugin -------------------------------------------------------------
namespace {
uint64_t add(uint64_t a, uint64_t b) { return a + b; }
uint64_t mix(uint64_t x, uint64_t rounds) {
  for (uint64_t i = 0; i < rounds; ++i) x = x * 0x9e3779b97f4a7c15ULL + (x >> 29);
  return x;
}
uint64_t version() { return BENCH_PLUGIN_VERSION; }
void* startup(const hotswap_host_api&) { return nullptr; }
void shutdown(void*) noexcept {}
}  // namespace
static const bench_api table = {&add, &mix, &version};
#define BENCH_STR2(x) #x
#define BENCH_STR(x) BENCH_STR2(x)
HOTSWAP_PLUGIN(bench_api, "bench", "v" BENCH_STR(BENCH_PLUGIN_VERSION), table, startup, shutdown, nullptr, nullptr,
               HOTSWAP_PLUGIN_UNLOAD_SAFE)

#else
// ---- the benchmark ----------------------------------------------------------
#include <benchmark/benchmark.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <hotswap/hotswap.hpp>
#include <hotswap/module/module.hpp>
#include <optional>
#include <thread>
#include <vector>

// ---- the call paths, out of line ---------------------------------------------
//
// Exactly what BM_call_slot_add and BM_call_canary_*_add inline, kept as real
// symbols so their assembly can be compared (scripts/bench_canary_call.sh):
//   objdump -d --no-show-raw-insn -C --disassemble=hotswap_bench_module_slot_call build-bench/bench/hotswap-bench-module
//   objdump -d --no-show-raw-insn -C --disassemble=hotswap_bench_canary_call build-bench/bench/hotswap-bench-module

extern "C" [[gnu::noinline]] std::uint64_t hotswap_bench_module_slot_call(
    const hotswap::modules::module_slot<bench_api>& s, hotswap::domain::reader& r, std::uint64_t x) {
  return s.call(r, [x](const bench_api& a) { return a.add(x, 1); });
}

extern "C" [[gnu::noinline]] std::uint64_t hotswap_bench_module_slot_routed_call(
    const hotswap::modules::module_slot<bench_api>& s, hotswap::domain::reader& r, std::uint64_t key, std::uint64_t x) {
  return s.call_routed(r, key, [x](const hotswap::modules::loaded_module& m, hotswap::modules::side) {
    return m.api<bench_api>().add(x, 1);
  });
}

extern "C" [[gnu::noinline]] std::uint64_t hotswap_bench_canary_call(const hotswap::modules::canary& c,
                                                                   hotswap::domain::reader& r, std::uint64_t key,
                                                                   std::uint64_t x) {
  return c.call(r, key, [x](const hotswap::modules::loaded_module& m, hotswap::modules::side) {
    return m.api<bench_api>().add(x, 1);
  });
}

namespace {

namespace fs = std::filesystem;
using hotswap::modules::module_errc;
using hotswap::modules::module_error;
using hotswap::modules::shadow_mode;
using clock_type = std::chrono::steady_clock;

/// A plugin directory with both builds and a shadow directory, under `base`.
struct bench_dirs {
  explicit bench_dirs(const fs::path& base) {
    std::string tmpl = (base / "hotswap-modbench-XXXXXX").string();
    root = ::mkdtemp(tmpl.data());
    plugins = root / "plugins";
    shadow = root / "shadow";
    fs::create_directory(plugins);
    ::chmod(plugins.c_str(), 0755);
    for (int v = 1; v <= 2; ++v) {
      files[v - 1] = plugins / ("bench_plugin_v" + std::to_string(v) + ".so");
      fs::copy_file(fs::path(HOTSWAP_BENCH_PLUGIN_DIR) / files[v - 1].filename(), files[v - 1]);
      ::chmod(files[v - 1].c_str(), 0644);
    }
  }
  ~bench_dirs() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  fs::path root, plugins, shadow;
  std::array<fs::path, 2> files;
};

struct bench_setup {
  bench_setup(shadow_mode mode, bool fsync, const fs::path& base, bool preflight = false)
      : dirs(base), request{preflight, {}} {
    hotswap::modules::loader_options o;
    o.shadow.mode = mode;
    o.shadow.dir = dirs.shadow;
    o.shadow.fsync = fsync;
    o.policy.allowed_dir = dirs.plugins;
    loader = std::make_shared<const hotswap::modules::module_loader>(o);
    calc.emplace(dom, loader, "bench", dirs.files[0]);
  }
  ~bench_setup() {
    calc.reset();
    dom.barrier();
    hotswap::modules::wait_for_unloads(std::chrono::seconds(30));
  }
  /// Swaps to the other build; waits out backpressure (not timed by callers that pause).
  hotswap::modules::swap_result swap() {
    for (;;) {
      try {
        return calc->swap(dirs.files[++turn % 2], std::nullopt, request);
      } catch (const module_error& e) {
        if (e.code() != module_errc::backpressure) throw;
        ++backpressure;
        dom.barrier();
      }
    }
  }

  bench_dirs dirs;
  hotswap::modules::load_request request;
  hotswap::domain dom;
  std::shared_ptr<const hotswap::modules::module_loader> loader;
  std::optional<hotswap::modules::module_slot<bench_api>> calc;
  std::uint64_t turn = 0;
  std::uint64_t backpressure = 0;
};

void report_percentiles(benchmark::State& state, std::vector<double>& us) {
  if (us.empty()) return;
  std::sort(us.begin(), us.end());
  auto at = [&](double q) { return us[std::min(us.size() - 1, static_cast<std::size_t>(q * static_cast<double>(us.size())))]; };
  state.counters["p50_us"] = at(0.50);
  state.counters["p90_us"] = at(0.90);
  state.counters["p99_us"] = at(0.99);
  state.counters["max_us"] = us.back();
}

void BM_swap_end_to_end(benchmark::State& state, shadow_mode mode, bool fsync, const char* base, bool preflight) {
  bench_setup s(mode, fsync, base, preflight);
  std::vector<double> us;
  us.reserve(static_cast<std::size_t>(state.max_iterations));
  for (auto _ : state) {
    const auto t0 = clock_type::now();
    const std::uint64_t before = s.backpressure;
    s.swap();
    if (s.backpressure == before)  // a swap that waited for the reclaimer is not a swap latency
      us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
  }
  report_percentiles(state, us);
  state.counters["backpressure"] = static_cast<double>(s.backpressure);
}
BENCHMARK_CAPTURE(BM_swap_end_to_end, file_tmp_fsync, shadow_mode::file, true, "/tmp", false)
    ->Iterations(1000)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_swap_end_to_end, file_tmp_nofsync, shadow_mode::file, false, "/tmp", false)
    ->Iterations(1000)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_swap_end_to_end, file_devshm_fsync, shadow_mode::file, true, "/dev/shm", false)
    ->Iterations(1000)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_swap_end_to_end, memfd, shadow_mode::memory, false, "/tmp", false)
    ->Iterations(1000)->Unit(benchmark::kMicrosecond)->UseRealTime();
// The preflight spawns a process per swap: fewer iterations.
BENCHMARK_CAPTURE(BM_swap_end_to_end, file_tmp_fsync_preflight, shadow_mode::file, true, "/tmp", true)
    ->Iterations(200)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_swap_end_to_end, memfd_preflight, shadow_mode::memory, false, "/tmp", true)
    ->Iterations(200)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_drain_to_unload(benchmark::State& state) {
  bench_setup s(shadow_mode::file, true, "/tmp");
  std::vector<double> us;
  for (auto _ : state) {
    const hotswap::modules::swap_result r = s.swap();
    const auto t0 = clock_type::now();
    if (!s.calc->wait_drained(r.replaced, std::chrono::seconds(10))) {
      state.SkipWithError("a version did not drain within 10 s");
      break;
    }
    const double dt = std::chrono::duration<double>(clock_type::now() - t0).count();
    state.SetIterationTime(dt);
    us.push_back(dt * 1e6);
  }
  report_percentiles(state, us);
}
BENCHMARK(BM_drain_to_unload)->Iterations(500)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_sustained_swaps(benchmark::State& state) {
  bench_setup s(shadow_mode::file, true, "/tmp");
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> calls{0};
  std::vector<std::thread> callers;
  for (int i = 0; i < state.range(0); ++i)
    callers.emplace_back([&] {
      auto& r = s.dom.this_thread();
      std::uint64_t n = 0, x = 0;
      while (!stop.load(std::memory_order_relaxed)) {  // a flag: nothing is published with it
        x = s.calc->call(r, [&](const bench_api& a) { return a.add(x, 1); });
        ++n;
      }
      benchmark::DoNotOptimize(x);
      calls.fetch_add(n, std::memory_order_relaxed);
    });
  for (auto _ : state) s.swap();
  stop.store(true);
  for (auto& t : callers) t.join();
  state.counters["swaps_per_s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["calls_per_s"] = benchmark::Counter(static_cast<double>(calls.load()), benchmark::Counter::kIsRate);
  state.counters["backpressure"] = static_cast<double>(s.backpressure);
}
BENCHMARK(BM_sustained_swaps)->ArgName("callers")->Arg(1)->Arg(2)->Iterations(2000)->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// ---- the call path ----------------------------------------------------------

bench_setup& call_setup() {
  static bench_setup s(shadow_mode::memory, false, "/tmp");
  return s;
}

void BM_call_direct_add(benchmark::State& state) {
  auto session = call_setup().calc->pin();  // keeps the version loaded; the floor
  auto* add = session->add;
  std::uint64_t x = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(add);  // reload: an indirect call every time
    x = add(x, 1);
    benchmark::DoNotOptimize(x);
  }
}
BENCHMARK(BM_call_direct_add);

void BM_call_slot_add(benchmark::State& state) {
  auto& s = call_setup();
  auto& r = s.dom.this_thread();  // a hot caller holds its reader
  std::uint64_t x = 0;
  for (auto _ : state) {
    x = s.calc->call(r, [&](const bench_api& a) { return a.add(x, 1); });
    benchmark::DoNotOptimize(x);
  }
}
BENCHMARK(BM_call_slot_add);

void BM_call_slot_lookup_add(benchmark::State& state) {
  auto& s = call_setup();
  std::uint64_t x = 0;
  for (auto _ : state) {
    x = s.calc->call([&](const bench_api& a) { return a.add(x, 1); });  // reader looked up per call
    benchmark::DoNotOptimize(x);
  }
}
BENCHMARK(BM_call_slot_lookup_add);

void BM_call_pin_add(benchmark::State& state) {
  auto session = call_setup().calc->pin();
  std::uint64_t x = 0;
  for (auto _ : state) {
    x = session->add(x, 1);
    benchmark::DoNotOptimize(x);
  }
}
BENCHMARK(BM_call_pin_add);

// The canary's call path beside the plain slot call (canary.hpp): with no
// canary running, and with one taking `weight` basis points of the keys (each
// iteration the next key, as connection ids arrive: a hash and a compare,
// then the call). A canary routes its stable slot's keyed calls, so each
// running one has a stable slot of its own (v1, candidate v2).
void BM_call_slot_routed_add(benchmark::State& state) {
  auto& s = call_setup();
  auto& r = s.dom.this_thread();
  std::uint64_t x = 0, key = 0;
  for (auto _ : state) {
    x = s.calc->call_routed(r, ++key, [&](const hotswap::modules::loaded_module& m, hotswap::modules::side) {
      return m.api<bench_api>().add(x, 1);
    });
    benchmark::DoNotOptimize(x);
  }
}
BENCHMARK(BM_call_slot_routed_add);

hotswap::modules::canary& idle_canary() {
  static hotswap::modules::canary c(call_setup().dom, *call_setup().calc);
  return c;
}

struct canary_rig {
  canary_rig(bench_setup& s, std::uint32_t weight_bp)
      : stable(s.dom, s.loader, "bench-" + std::to_string(weight_bp), s.dirs.files[0]), canary(s.dom, stable) {
    hotswap::modules::canary_policy p;
    p.steps_bp = weight_bp == 10000 ? std::vector<std::uint32_t>{10000} : std::vector<std::uint32_t>{weight_bp, 10000};
    canary.start("bench", s.loader->read(s.dirs.files[1]), p);
  }
  hotswap::modules::module_slot<bench_api> stable;
  hotswap::modules::canary canary;  // after stable: destroyed first, it routes stable's calls
};

hotswap::modules::canary& running_canary(std::uint32_t weight_bp) {
  static std::map<std::uint32_t, std::unique_ptr<canary_rig>> by_weight;
  auto& c = by_weight[weight_bp];
  if (!c) c = std::make_unique<canary_rig>(call_setup(), weight_bp);
  return c->canary;
}

// One call per iteration through `c`, each with the next key.
void call_through(benchmark::State& state, const hotswap::modules::canary& c) {
  auto& r = call_setup().dom.this_thread();
  std::uint64_t x = 0, key = 0;
  for (auto _ : state) {
    x = c.call(r, ++key, [&](const hotswap::modules::loaded_module& m, hotswap::modules::side) {
      return m.api<bench_api>().add(x, 1);
    });
    benchmark::DoNotOptimize(x);
  }
}

void BM_call_canary_none_add(benchmark::State& state) { call_through(state, idle_canary()); }
BENCHMARK(BM_call_canary_none_add);

void BM_call_canary_add(benchmark::State& state) {
  call_through(state, running_canary(static_cast<std::uint32_t>(state.range(0))));
}
BENCHMARK(BM_call_canary_add)->ArgName("weight_bp")->Arg(100)->Arg(5000)->Arg(10000);

// The floor of running two versions side by side: a direct call to v1's or
// v2's `add`, picked per key by the canary's own hash and compare (a mask, no
// branch), without any slot. At 50% the indirect call's target is a coin:
// what any router pays there, not the canary's routing.
void BM_call_direct_pick_add(benchmark::State& state) {
  const std::uint32_t weight_bp = static_cast<std::uint32_t>(state.range(0));
  auto v1 = call_setup().calc->pin();
  auto v2 = running_canary(10000).pin(0);  // at 100% every key is the candidate's
  using route = hotswap::modules::canary_route<hotswap::domain>;
  const std::uintptr_t stable = reinterpret_cast<std::uintptr_t>(v1->add);
  const std::uintptr_t candidate = reinterpret_cast<std::uintptr_t>(v2.pin->api<bench_api>().add);
  std::uint64_t x = 0, key = 0;
  for (auto _ : state) {
    const std::uintptr_t pick = std::uintptr_t{0} - static_cast<std::uintptr_t>(route::bucket(route::mix(++key)) < weight_bp);
    auto* add = reinterpret_cast<std::uint64_t (*)(std::uint64_t, std::uint64_t)>((candidate & pick) | (stable & ~pick));
    benchmark::DoNotOptimize(add);
    x = add(x, 1);
    benchmark::DoNotOptimize(x);
  }
}
BENCHMARK(BM_call_direct_pick_add)->ArgName("weight_bp")->Arg(100)->Arg(5000)->Arg(10000);

// The same three through the out-of-line copies (a call and a return more each).
void BM_call_slot_add_noinline(benchmark::State& state) {
  auto& s = call_setup();
  auto& r = s.dom.this_thread();
  std::uint64_t x = 0;
  for (auto _ : state) {
    x = hotswap_bench_module_slot_call(*s.calc, r, x);
    benchmark::DoNotOptimize(x);
  }
}
BENCHMARK(BM_call_slot_add_noinline);

void BM_call_slot_routed_add_noinline(benchmark::State& state) {
  auto& s = call_setup();
  auto& r = s.dom.this_thread();
  std::uint64_t x = 0, key = 0;
  for (auto _ : state) {
    x = hotswap_bench_module_slot_routed_call(*s.calc, r, ++key, x);
    benchmark::DoNotOptimize(x);
  }
}
BENCHMARK(BM_call_slot_routed_add_noinline);

void call_through_noinline(benchmark::State& state, const hotswap::modules::canary& c) {
  auto& r = call_setup().dom.this_thread();
  std::uint64_t x = 0, key = 0;
  for (auto _ : state) {
    x = hotswap_bench_canary_call(c, r, ++key, x);
    benchmark::DoNotOptimize(x);
  }
}

void BM_call_canary_none_add_noinline(benchmark::State& state) { call_through_noinline(state, idle_canary()); }
BENCHMARK(BM_call_canary_none_add_noinline);

void BM_call_canary_add_noinline(benchmark::State& state) {
  call_through_noinline(state, running_canary(static_cast<std::uint32_t>(state.range(0))));
}
BENCHMARK(BM_call_canary_add_noinline)->ArgName("weight_bp")->Arg(100)->Arg(5000)->Arg(10000);

// What the host adds per call to feed the verdict: one outcome and latency
// into this thread's shard (two relaxed adds on lines only it writes).
void BM_call_canary_report(benchmark::State& state) {
  auto& c = idle_canary();
  std::int64_t ns = 0;
  for (auto _ : state) {
    c.report(hotswap::modules::side::stable, hotswap::modules::outcome::ok, std::chrono::nanoseconds(ns += 7));
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_call_canary_report);

void BM_call_direct_mix(benchmark::State& state) {
  auto session = call_setup().calc->pin();
  auto* mix = session->mix;
  std::uint64_t x = 1;
  for (auto _ : state) {
    benchmark::DoNotOptimize(mix);
    x = mix(x, 32);
    benchmark::DoNotOptimize(x);
  }
}
BENCHMARK(BM_call_direct_mix);

void BM_call_slot_mix(benchmark::State& state) {
  auto& s = call_setup();
  auto& r = s.dom.this_thread();
  std::uint64_t x = 1;
  for (auto _ : state) {
    x = s.calc->call(r, [&](const bench_api& a) { return a.mix(x, 32); });
    benchmark::DoNotOptimize(x);
  }
}
BENCHMARK(BM_call_slot_mix);

}  // namespace

BENCHMARK_MAIN();
#endif
