// The load pipeline: reads plugin files under a policy and opens them.
//
// Opening checks everything before any plugin code runs, on the bytes that
// were read once (detail/source.hpp): the SHA-256 the request expects, if it
// names one (load_request::expected_sha256), the ELF structure (elf_check.hpp), the
// metadata note and seal (metadata_check.hpp), the dependencies
// (dependency_check.hpp), the retained-version limit, the process's mapping
// budget (map_budget.hpp) and, when the request asks for it, a preflight in a
// child process (preflight.hpp) unless the loader remembers that these bytes
// passed it (preflight_memo.hpp). Only then is the candidate mapped
// (detail/module_image.hpp: shadow copy, dependencies from their checked
// bytes, dlopen, descriptor). After startup, nothing of the load may have
// joined the global scope (global_scope.hpp). Each stage's time is kept
// (swap_timing.hpp).
//
// A version refused after its code ran (in the host: a descriptor, startup,
// migrate or self_test failure) cannot be unmapped safely unless it is
// declared unload-safe. Such refused-but-kept images count against their own
// budget (loader_options::max_refused_retained), never against max_retained:
// refusals cannot use up the room good versions need. Past that budget every
// request runs the preflight, whatever it asked for, so no candidate runs in
// the host without having passed a child process first.
//
// A loader is shared by the slots of a registry (one shadow directory, one
// log, one set of counters) and counts its own versions' unloads on worker
// threads: wait_for_unloads() on a loader waits for those alone.
//
//   module_loader loader(options);
//   loaded_module m = loader.open(loader.read("calc.so"), interface_of<calc_api>(), "calc");
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "audit.hpp"
#include "detail/dependency_check.hpp"
#include "detail/descriptor_check.hpp"
#include "detail/elf_check.hpp"
#include "detail/loader_context.hpp"
#include "detail/map_budget.hpp"
#include "detail/metadata_check.hpp"
#include "detail/module_image.hpp"
#include "detail/preflight.hpp"
#include "detail/preflight_memo.hpp"
#include "detail/source.hpp"
#include "detail/unload_tracker.hpp"
#include "error.hpp"
#include "loaded_module.hpp"
#include "loader_options.hpp"
#include "record.hpp"
#include "swap_timing.hpp"

namespace hotswap::modules {

class module_loader {
 public:
  explicit module_loader(loader_options options = {})
      : ctx_(std::make_shared<detail::loader_context>(std::move(options))) {}

  /// Reads and checks a file (source.hpp). Throws module_error.
  plugin_file read(const std::filesystem::path& path) const {
    return detail::read_plugin_file(path, ctx_->options.policy, ctx_->options.trace);
  }

  /// Loads `file` (checks, preflight if asked or forced, shadow copy, dlopen,
  /// ABI and interface checks); not started yet. Throws module_error; on a
  /// throw nothing stays behind.
  loaded_module open(const plugin_file& file, const interface_id& expected, std::string module = {},
                     const load_request& request = {}) const {
    try {
      detail::stage_clock clock;
      swap_timing timing;
      ctx_->step("check", file.path);
      detail::checked_candidate checked = check(file, expected, request);
      clock.lap(timing.check);
      // Relaxed: a count compared against a budget; nothing is published through it.
      const bool forced = ctx_->refused_retained.load(std::memory_order_relaxed) >= ctx_->options.max_refused_retained;
      if (request.preflight || forced) {
        if (!request.preflight) ctx_->preflights_forced.fetch_add(1, std::memory_order_relaxed);  // a statistic
        timing.preflight_remembered = preflight(file, *checked.dependencies, checked.expectation);
      }
      clock.lap(timing.preflight);
      auto image = std::make_unique<detail::module_image>(ctx_, file, std::move(module), std::move(checked), timing);
      image->map(file, expected, clock);
      return loaded_module(std::move(image));
    } catch (const std::bad_alloc&) {
      throw module_error(module_errc::resource_exhausted, file.path, "resource exhausted: out of memory while loading");
    }
  }

  const loader_options& options() const noexcept { return ctx_->options; }
  const detail::shadow_store& shadow() const noexcept { return ctx_->store; }
  /// Never throws (a failing sink is counted in stats().sink_failures).
  void emit(const module_event& e) const noexcept { ctx_->emit(e); }

  /// Waits until every unload of this loader's versions handed to a worker so
  /// far has finished (other loaders' unloads are not waited for). False on timeout.
  bool wait_for_unloads(std::chrono::nanoseconds timeout) const { return ctx_->unloads.wait(timeout); }

  loader_stats stats() const noexcept {
    // Relaxed: statistics, read as a snapshot; no partner.
    return {ctx_->loaded.load(std::memory_order_relaxed),          ctx_->unloaded.load(std::memory_order_relaxed),
            ctx_->quarantined.load(std::memory_order_relaxed),     ctx_->drain_ns_total.load(std::memory_order_relaxed),
            ctx_->drain_ns_max.load(std::memory_order_relaxed),    ctx_->retained.load(std::memory_order_relaxed),
            ctx_->hook_timeouts.load(std::memory_order_relaxed),   ctx_->hook_exceptions.load(std::memory_order_relaxed),
            ctx_->sink_failures.load(std::memory_order_relaxed),   ctx_->preflights.load(std::memory_order_relaxed),
            ctx_->preflights_remembered.load(std::memory_order_relaxed), ctx_->refused_retained.load(std::memory_order_relaxed),
            ctx_->preflights_forced.load(std::memory_order_relaxed),  ctx_->mapped_segments.load(std::memory_order_relaxed)};
  }

 private:
  [[noreturn]] static void fail(const plugin_file& file, module_errc code, const std::string& cause) {
    throw module_error(code, file.path, cause);
  }

  // Every check on the bytes, before any of the candidate's code runs.
  detail::checked_candidate check(const plugin_file& file, const interface_id& expected, const load_request& request) const {
    if (!request.expected_sha256.empty() && request.expected_sha256 != file.sha256)
      fail(file, module_errc::hash_mismatch,
           "hash mismatch: sha256 " + file.sha256 + ", the request expected " + request.expected_sha256);
    detail::elf_facts facts;
    if (auto problem = detail::check_elf(file.view(), &facts, ctx_->options.policy.elf)) fail(file, problem->code, problem->cause);
    auto metadata = detail::read_metadata(file.view(), facts);
    if (auto* problem = std::get_if<load_problem>(&metadata)) fail(file, problem->code, problem->cause);
    const hotswap_plugin_metadata& md = std::get<hotswap_plugin_metadata>(metadata);
    const bool seal_held_before = ctx_->sealed.passed(file.sha256);
    if (auto problem = detail::check_metadata(md, file.view(), facts, expected, ctx_->options.policy.require_seal,
                                              seal_held_before))
      fail(file, problem->code, problem->cause);
    if (!seal_held_before && detail::is_sealed(md)) ctx_->sealed.remember(file.sha256);  // it held: checked just now
    detail::checked_candidate out;
    out.unload_safe = (md.flags & HOTSWAP_PLUGIN_UNLOAD_SAFE) != 0;
    out.shadow_safe = (md.flags & HOTSWAP_PLUGIN_SHADOW_SAFE) != 0;
    out.dependencies = request.dependencies ? request.dependencies
                                            : std::make_shared<const std::vector<checked_dependency>>(
                                                  detail::check_dependencies(file, facts, ctx_->options.policy));
    out.exported = std::move(facts.exported);
    out.load_segments = facts.load_segments;
    bool thread_exit_work = !facts.thread_exit_imports.empty();
    for (const checked_dependency& d : *out.dependencies) thread_exit_work |= !d.thread_exit_imports.empty();
    out.hooks = thread_exit_work || !ctx_->options.reuse_hook_threads ? detail::hook_thread::dedicated
                                                                       : detail::hook_thread::reused;
    // Relaxed: a count compared against a limit; nothing is published through it.
    const std::uint64_t kept = ctx_->retained.load(std::memory_order_relaxed) + ctx_->quarantined.load(std::memory_order_relaxed);
    if (kept >= ctx_->options.max_retained)
      fail(file, module_errc::retained_limit, "retained limit: " + std::to_string(kept) +
                                                  " versions already stay mapped (loader_options::max_retained)");
    std::uint64_t segments = facts.load_segments;
    for (const checked_dependency& d : *out.dependencies) segments += d.load_segments;
    if (auto problem = detail::map_budget_problem(segments, ctx_->options.map_count_reserve))
      fail(file, module_errc::mapping_limit, *problem);
    out.expectation = {expected, detail::note_text(md.module_name).value_or(""),
                       detail::note_text(md.build_version).value_or("")};
    return out;
  }

  // The child process, unless these bytes passed it before under this loader.
  // True when it was remembered (not run).
  bool preflight(const plugin_file& file, const std::vector<checked_dependency>& deps,
                 const detail::preflight_expectation& expected) const {
    const std::string key = detail::preflight_memo::key_of(file, deps, expected.interface);
    if (ctx_->preflight_passes.passed(key)) {
      ctx_->step("preflight_remembered", file.path);
      ctx_->preflights_remembered.fetch_add(1, std::memory_order_relaxed);  // a statistic: no partner
      return true;
    }
    ctx_->step("preflight", file.path);
    ctx_->preflights.fetch_add(1, std::memory_order_relaxed);  // a statistic: no partner
    detail::run_preflight(file, deps, expected, ctx_->options.preflight);
    ctx_->preflight_passes.remember(key);
    return false;
  }

  std::shared_ptr<detail::loader_context> ctx_;
};

/// Waits until every unload handed to a worker so far, by any loader in the
/// process, has finished. False on timeout. (A registry waits for its own
/// loader's only: module_loader::wait_for_unloads.)
inline bool wait_for_unloads(std::chrono::nanoseconds timeout) {
  return detail::unload_tracker::process_wide().wait(timeout);
}

}  // namespace hotswap::modules
