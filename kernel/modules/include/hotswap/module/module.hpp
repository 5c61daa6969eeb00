// hotswap modules: swap real code (.so plugins) in a running process.
//
// The layer's public API is the headers this one includes, and only those
// (the packaging test and the layer-boundary test hold the tree to it):
//   plugin.h               the C ABI a plugin exports (descriptor and metadata note)
//   interface_id.hpp       what a host expects a plugin to implement; interface_of<T>()
//   source_policy.hpp      which files a loader reads (directory, owner, mode, size, hash, seal)
//   elf_limits.hpp         what a plugin file may ask ld.so to map
//   path_policy.hpp        the loader's "inside this directory" rule, for hosts' own paths
//   plugin_file.hpp        one plugin file, read once (what was checked is what is loaded)
//   checked_dependency.hpp a plugin's dependency as checked, kept for rollbacks
//   shadow_options.hpp     where the private copy that is dlopened lives (file, memfd, in place)
//   preflight_options.hpp  how the preflight child runs
//   loader_options.hpp     a loader's options, a load request, the loader's counters
//   module_loader.hpp      the load pipeline: read, check, preflight, map; waits for its unloads
//   loaded_module.hpp      one loaded version as its users hold it (the T of a slot)
//   dynamic_loader_lock.hpp  the loader's dlopen/dlclose lock, for hosts that fork
//   error.hpp              module_errc and module_error: every refusal names file and cause
//   record.hpp             a version's status, keepalives and the audit-log event type
//   audit.hpp              escaped, capped events; a JSON-lines sink
//   swap_timing.hpp        where one swap's time went, stage by stage
//   module_slot.hpp        a module behind a hotswap::slot: swap, call, pin, drain
//   health.hpp             per-version call outcomes and latency, per thread, merged when read
//   verdict.hpp            the canary's sequential test (SPRT) and its policy
//   canary.hpp             a candidate beside the stable version: keyed steps, fallback, shadow runs
//   registry.hpp           named modules, history, rollback, policies, principals, log
//
// Names: hotswap::modules; internals in hotswap::modules::detail, declared
// only under detail/ (never included directly by a user): reading a file
// (source.hpp, sha256.hpp), the checks before any plugin code runs
// (elf_check, metadata_check, descriptor_check, dependency_check), the
// preflight (preflight.hpp, preflight_memo.hpp), shadow copies (shadow.hpp),
// hooks on threads with deadlines (hook_runner.hpp), the loaded image and its
// unload decision (module_image.hpp, unload_decision.hpp, unload_tracker.hpp),
// the global-scope and mapping-budget checks. plugin.h keeps
// hotswap::interface_traits and hotswap::plugin: they are the plugin ABI that
// plugin sources and shared interface headers spell out, not the loader's.
//
// The rule that makes unloading safe is the kernel's: a version's destructor
// (shutdown, dlclose) runs only after a grace period has passed since it was
// replaced and its last pin is gone. Callers inside a read section, sessions
// holding pins and the plugin's own keepalives all count; nothing else may call
// into a plugin. Build plugins with -fno-gnu-unique (GCC), or dlclose will keep
// them mapped and every version will be quarantined.
//
// Unloading code is opt-in (HOTSWAP_PLUGIN_UNLOAD_SAFE): other plugins are
// shut down and then retained, their code left mapped, each swap costing
// address space up to loader_options::max_retained. kernel/modules/README.md
// says what is guaranteed, what is detected and what cannot be survived.
#pragma once

#include "audit.hpp"
#include "canary.hpp"
#include "checked_dependency.hpp"
#include "dynamic_loader_lock.hpp"
#include "elf_limits.hpp"
#include "error.hpp"
#include "health.hpp"
#include "interface_id.hpp"
#include "loaded_module.hpp"
#include "loader_options.hpp"
#include "module_loader.hpp"
#include "module_slot.hpp"
#include "path_policy.hpp"
#include "plugin.h"
#include "plugin_file.hpp"
#include "preflight_options.hpp"
#include "record.hpp"
#include "registry.hpp"
#include "sha256.hpp"
#include "shadow_options.hpp"
#include "source_policy.hpp"
#include "swap_timing.hpp"
#include "verdict.hpp"
