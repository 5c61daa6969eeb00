// libcds baselines: its general-purpose buffered URCU read section and a
// hazard-pointer guard, each around the same virtual call.
#include <cds/gc/hp.h>
#include <cds/init.h>
#include <cds/threading/model.h>
#include <cds/urcu/general_buffered.h>

#include <atomic>

#include "common.hpp"

namespace hotswap_bench {
namespace {

using gpb = cds::urcu::gc<cds::urcu::general_buffered<>>;

plugin g_cds_version(1);
// Non-const: libcds's hazard pointers are void*. cds's atomics:: is std::.
std::atomic<handler*> g_cds_ptr{&g_cds_version};

/// Attaches the calling thread to libcds (HP and URCU) for its lifetime.
/// libcds counts nested attaches, so this composes with the kernel's
/// cds_urcu_grace attaching the same thread.
struct cds_attachment {
  cds_attachment() { cds::threading::Manager::attachThread(); }
  ~cds_attachment() { cds::threading::Manager::detachThread(); }
  cds_attachment(const cds_attachment&) = delete;
  cds_attachment& operator=(const cds_attachment&) = delete;
};

void bm_cds_urcu(benchmark::State& state) {
  const cds_attachment attach;
  int acc = state.thread_index();
  for (auto _ : state) {
    gpb::access_lock();
    acc = call_payload(*g_cds_ptr.load(std::memory_order_acquire), acc);
    gpb::access_unlock();
  }
  benchmark::DoNotOptimize(acc);
}

void bm_cds_hp(benchmark::State& state) {
  const cds_attachment attach;
  int acc = state.thread_index();
  for (auto _ : state) {
    cds::gc::HP::Guard guard;
    acc = call_payload(*guard.protect(g_cds_ptr), acc);
  }
  benchmark::DoNotOptimize(acc);
}

}  // namespace

void init_cds() {
  // Both singletons must exist before any thread attaches; neither is ever
  // destroyed (threads still attached at exit detach into them).
  cds::Initialize();
  gpb::rcu_implementation::Construct();
  static auto* const hp = new cds::gc::HP();
  (void)hp;
}

void register_cds_call() {
  call_shape(benchmark::RegisterBenchmark("call/cds_urcu_gpb", bm_cds_urcu));
  call_shape(benchmark::RegisterBenchmark("call/cds_hp", bm_cds_hp));
}

}  // namespace hotswap_bench
