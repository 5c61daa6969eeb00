// hotswap-bench-kernel: the kernel's call path next to every baseline, and
// the writer side, in one binary and one run. See bench/README.md.
#include <hotswap/options.hpp>

#include <chrono>
#include <string>
#include <thread>

#include "common.hpp"

namespace {

std::string microseconds(std::chrono::nanoseconds d) {
  return std::to_string(std::chrono::duration<double, std::micro>(d).count());
}

/// The domain defaults every writer-side row depends on, as compiled.
void add_domain_defaults_to_context(const hotswap::domain_options& defaults) {
  benchmark::AddCustomContext("default_membarrier_after_us", microseconds(defaults.membarrier_after));
  benchmark::AddCustomContext("default_reclaim_window_us", microseconds(defaults.reclaim_window));
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  namespace hb = hotswap_bench;
  hb::init_cds();
  hb::register_call_baselines();
  hb::register_urcu_call();
  hb::register_cds_call();
  hb::register_kernel_call();
  hb::register_pin_baselines();
  hb::register_kernel_pin();
  hb::register_kernel_writer();
  hb::register_urcu_writer();

  add_domain_defaults_to_context(hotswap::domain_options{});
  benchmark::AddCustomContext("hardware_concurrency", std::to_string(std::thread::hardware_concurrency()));
#if defined(__clang__)
  benchmark::AddCustomContext("compiled_with", "clang " __clang_version__);
#elif defined(__GNUC__)
  benchmark::AddCustomContext("compiled_with", "g++ " __VERSION__);
#endif
#ifdef NDEBUG
  benchmark::AddCustomContext("ndebug", "yes");
#else
  benchmark::AddCustomContext("ndebug", "no (assertions on: not a reference build)");
#endif

  benchmark::RunSpecifiedBenchmarks();
  hb::teardown_kernel();
  benchmark::Shutdown();
  return 0;
}
