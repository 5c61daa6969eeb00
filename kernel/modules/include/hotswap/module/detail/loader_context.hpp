// What the versions of one loader share with it and with each other: the
// options (normalised once), the shadow stores, the preflight and seal memos, the
// counters, the log sink and the loader's own unload tracker. Every loaded
// image holds it, so it outlives the loader while any of them is mapped.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <string_view>
#include <utility>

#include "../audit.hpp"
#include "../loader_options.hpp"
#include "../record.hpp"
#include "preflight_memo.hpp"
#include "shadow.hpp"
#include "unload_tracker.hpp"

namespace hotswap::modules::detail {

inline loader_options normalized(loader_options o) {
  if (!o.policy.allowed_dir.empty()) o.policy.allowed_dir = std::filesystem::absolute(o.policy.allowed_dir).lexically_normal();
  return o;
}

struct loader_context {
  explicit loader_context(loader_options o)
      : options(normalized(std::move(o))),
        store(options.shadow),
        dependency_store({shadow_mode::memory, {}, false}),
        preflight_passes(options.preflight.remembered_passes),
        sealed(64) {}
  /// Never throws: a sink's failure is counted, and the event is dropped.
  void emit(const module_event& e) const noexcept {
    if (!options.log) return;
    try {
      options.log(sanitized(e, options.max_event_bytes));
    } catch (...) {
      sink_failures.fetch_add(1, std::memory_order_relaxed);  // a statistic: no partner
    }
  }
  void step(std::string_view stage, const std::filesystem::path& p) const {
    if (options.trace) options.trace(stage, p);
  }

  const loader_options options;
  shadow_store store;
  shadow_store dependency_store;  // checked dependencies: always memfds
  preflight_memo preflight_passes;
  remembered_keys sealed;  // SHA-256s of files whose seal held (metadata_check.hpp)
  unload_tracker unloads;  // this loader's versions unloading on workers now
  // Statistics and the retained count (relaxed everywhere): they order nothing.
  std::atomic<std::uint64_t> loaded{0}, unloaded{0}, quarantined{0}, drain_ns_total{0}, drain_ns_max{0}, retained{0},
      hook_timeouts{0}, hook_exceptions{0}, preflights{0}, preflights_remembered{0}, refused_retained{0},
      preflights_forced{0}, mapped_segments{0};
  mutable std::atomic<std::uint64_t> sink_failures{0};
};

}  // namespace hotswap::modules::detail
