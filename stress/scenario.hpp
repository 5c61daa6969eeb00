// Kernel scenarios: what a version is and what one call does (the `scenario`
// concept at the end of this file states it).
//
//   name, description                  static string_views
//   version : version_base             movable; the payload backends store
//   S(const scenario_config&, run_probe&)  on the main thread, before the run
//   make()                             a complete new version; runs on a swapper
//                                      thread before publish (so a plugin
//                                      scenario loads its .so there)
//   call(const version&, uint64_t)     the work of one call, inside a section
//
// The rig numbers versions in publish order (version_base::number) and checks
// the canary; a scenario only adds its payload and its work. Each scenario has
// its own source file (scenarios/NAME.cpp) that instantiates the rig for the
// backends it runs on; registry.cpp lists the files' entries. End-to-end
// scenarios (a real server under load) follow host_scenario.hpp instead.
#pragma once

#include <atomic>
#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "clock.hpp"
#include "probe.hpp"

namespace hotswap::stress {

/// Scenario settings from the command line (`--scenario-arg key=value`).
struct scenario_config {
  std::vector<std::pair<std::string, std::string>> args;
  std::string get(std::string_view key, std::string fallback = {}) const {
    for (const auto& [k, v] : args)
      if (k == key) return v;
    return fallback;
  }
};

/// The part of every version the rig relies on: its number (assigned in
/// publish order by the rig), a canary poisoned by the destructor, and the
/// report of its destruction (retire-to-reclaim latency, leak count).
class version_base {
 public:
  static constexpr std::uint64_t live_canary = 0x5354524553532b2bULL;  // "STRESS++"
  static constexpr std::uint64_t dead_canary = 0xdeadbeefdeadbeefULL;

  explicit version_base(run_probe& probe) noexcept : probe_(&probe) {
    probe.versions_created.fetch_add(1, std::memory_order_relaxed);
  }
  // A move transfers the identity: the moved-from shell reports nothing.
  version_base(version_base&& o) noexcept : number(o.number), probe_(std::exchange(o.probe_, nullptr)) {}
  version_base& operator=(version_base&&) = delete;
  version_base(const version_base&) = delete;
  version_base& operator=(const version_base&) = delete;

  ~version_base() {
    if (probe_ == nullptr) return;
    const std::uint64_t was = canary_.exchange(dead_canary, std::memory_order_relaxed);
    if (was != live_canary) probe_->count(violation::double_destroy);
    std::uint64_t retired = 0;
    const std::uint64_t now = cycle_clock::now();
    if (teardown_start_ != 0) probe_->teardown.record(now - teardown_start_);
    if (probe_->retired_at.lookup(number, retired)) probe_->reclaim.record(now - retired);
    probe_->versions_destroyed.fetch_add(1, std::memory_order_relaxed);
  }

  bool alive() const noexcept { return canary_.load(std::memory_order_relaxed) == live_canary; }

  /// A version whose payload is slow to destroy (a plugin's shutdown and
  /// dlclose) calls this first in its destructor: the time until this base's
  /// destructor ends is its teardown, reported beside the grace periods.
  void teardown_begins() noexcept { teardown_start_ = cycle_clock::now(); }

  /// Set by the rig before publish; immutable once published.
  std::uint64_t number = 0;

 private:
  std::atomic<std::uint64_t> canary_{live_canary};
  run_probe* probe_;
  std::uint64_t teardown_start_ = 0;
};

template <class S>
concept scenario = requires(S& s, const S& cs, const scenario_config& cfg, run_probe& probe,
                            const typename S::version& v, std::uint64_t arg) {
  { S::name } -> std::convertible_to<std::string_view>;
  { S::description } -> std::convertible_to<std::string_view>;
  requires std::derived_from<typename S::version, version_base>;
  requires std::move_constructible<typename S::version>;
  requires std::constructible_from<S, const scenario_config&, run_probe&>;
  { s.make() } -> std::same_as<typename S::version>;
  { cs.call(v, arg) } -> std::same_as<std::uint64_t>;
};

}  // namespace hotswap::stress
