#include "clock.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

namespace hotswap::stress {
namespace {

clock_info g_info;

bool cpu_has_invariant_tsc() {
#if defined(__x86_64__)
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line);
    bool constant = false, nonstop = false;
    for (std::string w; words >> w;) {
      constant |= w == "constant_tsc";
      nonstop |= w == "nonstop_tsc";
    }
    return constant && nonstop;
  }
#endif
  return false;
}

}  // namespace

const clock_info& cycle_clock::calibrate(std::chrono::milliseconds span) {
  using namespace std::chrono;
  detail::use_tsc = cpu_has_invariant_tsc();
  g_info = {};
  g_info.tsc = detail::use_tsc;
  if (detail::use_tsc) {
    // Two samples `span` apart; each pairs a steady_clock read with a TSC read
    // taken back to back (the pair with the tightest bracket wins).
    auto sample = [] {
      std::uint64_t best_gap = ~std::uint64_t{0}, tsc = 0;
      steady_clock::time_point at;
      for (int i = 0; i < 64; ++i) {
        const std::uint64_t a = now();
        const auto s = steady_clock::now();
        const std::uint64_t b = now();
        if (b - a < best_gap) best_gap = b - a, tsc = a + (b - a) / 2, at = s;
      }
      return std::pair{at, tsc};
    };
    const auto [s0, t0] = sample();
    std::this_thread::sleep_for(span);
    const auto [s1, t1] = sample();
    const double ns = static_cast<double>(duration_cast<nanoseconds>(s1 - s0).count());
    g_info.ns_per_tick = ns / static_cast<double>(t1 - t0);
  }

  std::vector<std::uint64_t> pairs(200000);
  for (auto& p : pairs) {
    const std::uint64_t a = start();
    const std::uint64_t b = stop();
    p = b - a;
  }
  std::sort(pairs.begin(), pairs.end());
  g_info.overhead_ns = static_cast<double>(pairs[pairs.size() / 2]) * g_info.ns_per_tick;
  // Granularity as callers see it: the median non-zero gap between two
  // back-to-back reads (on a VM the counter may advance in coarse steps).
  std::vector<std::uint64_t> steps;
  steps.reserve(100000);
  for (int i = 0; i < 100000; ++i) {
    const std::uint64_t a = now(), b = now();
    if (b > a) steps.push_back(b - a);
  }
  std::sort(steps.begin(), steps.end());
  g_info.resolution_ns = steps.empty() ? 0.0 : static_cast<double>(steps[steps.size() / 2]) * g_info.ns_per_tick;

  std::ostringstream s;
  s.precision(4);
  if (detail::use_tsc)
    s << "rdtsc/rdtscp (invariant TSC, " << 1.0 / g_info.ns_per_tick << " GHz calibrated against steady_clock)";
  else
    s << "steady_clock (no invariant TSC)";
  g_info.source = s.str();
  return g_info;
}

const clock_info& cycle_clock::info() noexcept { return g_info; }
double cycle_clock::info_ns_per_tick() noexcept { return g_info.ns_per_tick; }

}  // namespace hotswap::stress
