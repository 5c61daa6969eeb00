// What a module_loader is told and what it counts: the loader's options (one
// set per loader, shared by the slots of a registry), what one load request
// asks for beyond them, and the loader's counters.
//
//   hotswap::modules::loader_options o;
//   o.policy.allowed_dir = "/srv/plugins";   // required by a registry
//   o.max_retained = 16;                     // versions whose code may stay mapped
//   hotswap::modules::module_loader loader(o);
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "checked_dependency.hpp"
#include "interface_id.hpp"
#include "preflight_options.hpp"
#include "record.hpp"
#include "shadow_options.hpp"
#include "source_policy.hpp"

namespace hotswap::modules {

/// Observes the steps of a load ("resolve", "open", "read", "shadow",
/// "dlopen", "startup", ...): tracing, and tests that act between two steps.
using trace_fn = std::function<void(std::string_view stage, const std::filesystem::path&)>;

struct loader_options {
  shadow_options shadow;
  /// policy.allowed_dir is made absolute when the loader is built (a later
  /// chdir changes nothing).
  source_policy policy;
  /// A replaced version still loaded this long after it was replaced is
  /// reported stuck (once). It keeps draining; nothing is forced.
  std::chrono::nanoseconds drain_deadline = std::chrono::seconds(10);
  /// Each of startup, migrate, self_test, shutdown and dlclose: a hook still
  /// running after this is reported, its version refused (or retained for good).
  std::chrono::nanoseconds hook_deadline = std::chrono::seconds(10);
  /// Run the hooks and dlclose of a plugin that imports no thread-exit
  /// registration (elf_facts::thread_exit_imports) on reused threads
  /// (detail/hook_runner.hpp); others always get a dedicated thread per hook.
  /// Turn off if the host hands its plugins a way to register thread-exit
  /// work that their imports do not show (a function pointer to it): every
  /// hook then gets a thread of its own, at a thread start and exit per hook.
  bool reuse_hook_threads = true;
  /// Versions whose code stays mapped (retained or quarantined) before new
  /// loads are refused (retained_limit): each costs address space for good.
  std::size_t max_retained = 64;
  /// Versions refused after their code ran whose code stays mapped. Past this,
  /// every request runs the preflight (even one that asked not to).
  std::size_t max_refused_retained = 8;
  /// Mappings (vm.max_map_count minus those in /proc/self/maps) that must stay
  /// free after a load: the host's own malloc, threads and posix_spawn need them.
  std::size_t map_count_reserve = 8192;
  /// How the preflight runs; whether a load runs it is per request.
  preflight_options preflight;
  /// Cap on an event's message (other text fields: a quarter of it, at least 256).
  std::size_t max_event_bytes = 4096;
  module_log log;   ///< unload, retained, stayed_mapped, stuck and plugin_log events
  trace_fn trace;   ///< steps of each load, for tracing and tests
};

/// Per load: what a request asks for beyond the loader's options.
struct load_request {
  /// Load the candidate in a child process first (preflight.hpp).
  bool preflight = false;
  /// A rollback's: the dependency bytes checked when the version was first
  /// loaded, loaded again instead of the files on disk now.
  std::shared_ptr<const std::vector<checked_dependency>> dependencies;
  /// Non-empty (lowercase hex): refuse bytes whose SHA-256 differs
  /// (module_errc::hash_mismatch), before any check runs their code. For a
  /// caller that approved one build (a preflight elsewhere, a deploy manifest)
  /// and loads the file again later: a file rewritten since is refused.
  std::string expected_sha256;
};

/// Counters of a loader, over every version it loaded. Approximate while they change.
struct loader_stats {
  std::uint64_t loaded = 0;
  std::uint64_t unloaded = 0;
  std::uint64_t quarantined = 0;
  std::uint64_t drain_ns_total = 0;  ///< retired -> unloaded, summed over published versions
  std::uint64_t drain_ns_max = 0;
  std::uint64_t retained = 0;        ///< code kept mapped on purpose (not unload-safe, hook failure)
  std::uint64_t hook_timeouts = 0;   ///< hooks that did not return by the hook deadline
  std::uint64_t hook_exceptions = 0; ///< exceptions that crossed the plugin ABI
  std::uint64_t sink_failures = 0;   ///< log sink calls that threw
  std::uint64_t preflights = 0;             ///< child processes run (passed or not)
  std::uint64_t preflights_remembered = 0;  ///< preflights skipped: the bytes had passed before
  /// Refused after their code ran, code kept mapped: their own budget
  /// (max_refused_retained), not counted in `retained` or `quarantined`.
  std::uint64_t refused_retained = 0;
  std::uint64_t preflights_forced = 0;  ///< preflights run because that budget was spent
  std::uint64_t mapped_segments = 0;    ///< loadable segments of the versions still mapped, with their dependencies
};

}  // namespace hotswap::modules
