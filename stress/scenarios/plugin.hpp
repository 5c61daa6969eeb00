// The `plugin` scenario: a version is a real .so loaded through the module
// loader (read, ELF and descriptor checks, memfd shadow copy, dlopen,
// startup), made on the swapper thread before publish; a call goes through
// its function table. Replaced versions are shut down and dlclose'd on the
// backend's reclaimer, so a call that reached unloaded code would crash or
// return the plugin's after-shutdown marker, which counts as a violation.
//
// Settings: --scenario-arg dir=PATH (default: where CMake built the plugins),
// --scenario-arg shadow=memory|file, --scenario-arg hooks=reused|dedicated
// (loader_options::reuse_hook_threads: dedicated = a thread per hook, as
// before issue 26).
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include <hotswap/module/module.hpp>

#include "plugins/stress_api.h"
#include "scenario.hpp"

#ifndef HOTSWAP_STRESS_PLUGIN_DIR
#define HOTSWAP_STRESS_PLUGIN_DIR "."
#endif

namespace hotswap::stress {

class plugin_scenario {
 public:
  static constexpr std::string_view name = "plugin";
  static constexpr std::string_view description =
      "real .so versions through the module loader (memfd shadow copies); a call goes through the plugin's table";

  struct version : version_base {
    version(run_probe& p, modules::loaded_module m) : version_base(p), module(std::move(m)), api(&module.api<stress_api>()) {}
    version(version&&) noexcept = default;
    version& operator=(version&&) = delete;
    ~version() { teardown_begins(); }  // the module's shutdown and dlclose follow
    modules::loaded_module module;
    const stress_api* api;
  };

  plugin_scenario(const scenario_config& config, run_probe& probe)
      : probe_(probe), dir_(config.get("dir", HOTSWAP_STRESS_PLUGIN_DIR)), loader_(options(config)) {}

  /// Alternates between the two builds; every load is a fresh shadow copy.
  version make() {
    const std::uint64_t n = made_.fetch_add(1, std::memory_order_relaxed);
    const auto path = dir_ / (n % 2 == 0 ? "stress_plugin_v1.so" : "stress_plugin_v2.so");
    modules::loaded_module m = loader_.open(loader_.read(path), modules::interface_of<stress_api>(), "stress");
    m.start();  // startup before publish, as module_slot does
    return version(probe_, std::move(m));
  }

  std::uint64_t call(const version& v, std::uint64_t arg) const noexcept {
    const std::uint64_t r = v.api->call(arg);
    if (r == after_shutdown) probe_.count(violation::dead_version);  // ran in a shut-down plugin
    return r;
  }

 private:
  static modules::loader_options options(const scenario_config& config) {
    modules::loader_options o;
    o.shadow.mode = config.get("shadow", "memory") == "file" ? modules::shadow_mode::file : modules::shadow_mode::memory;
    o.reuse_hook_threads = config.get("hooks", "reused") != "dedicated";
    return o;
  }

  static constexpr std::uint64_t after_shutdown = 0xdeadc0dedeadc0deULL;  // stress_plugin.cpp's marker

  run_probe& probe_;
  std::filesystem::path dir_;
  modules::module_loader loader_;
  std::atomic<std::uint64_t> made_{0};
};

}  // namespace hotswap::stress
