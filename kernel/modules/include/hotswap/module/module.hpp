// hotswap modules: swap real code (.so plugins) in a running process.
//
// The pieces, each in its own header:
//   plugin.h         the C ABI a plugin exports (descriptor and metadata note)
//   detail/source.hpp  read a plugin file once, under a policy (directories, owner, mode, size, hash)
//   detail/sha256.hpp  the hash behind shadow names, the allow list, seals and the audit log (libcrypto)
//   detail/elf_check.hpp  refuse non-ELF, truncated, malformed or foreign files before dlopen
//   detail/metadata_check.hpp  the metadata note and the seal, checked before any plugin code runs
//   detail/dependency_check.hpp  DT_NEEDED, RPATH, RUNPATH under the same policy
//   detail/preflight.hpp  load a candidate in a child process first
//   detail/preflight_memo.hpp  candidates that already passed it (by content), not tried again
//   swap_timing.hpp  where one swap's time went, stage by stage
//   detail/hook_runner.hpp  every plugin hook on a thread of its own, with a deadline
//   audit.hpp        escaped, capped events; a JSON-lines sink
//   detail/descriptor_check.hpp  refuse a descriptor of the wrong ABI, interface or shape
//   detail/shadow.hpp  private copies (file, memfd, or in place) with never-reused names
//   record.hpp       a version's status, keepalives and the audit-log event type
//   loaded_module.hpp  one loaded version: dlopen, checks, lifecycle, verified unload
//   module_slot.hpp  a module behind a hotswap::slot: swap, call, pin, drain
//   registry.hpp     named modules, history, rollback, policies, principals, log
//
// Names: hotswap::modules, internals in hotswap::modules::detail. The headers
// under detail/ come in through this one (or registry.hpp), never directly;
// the option types some of them hold (source_policy, shadow_options,
// preflight_options) are public names all the same. plugin.h keeps
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
#include "detail/dependency_check.hpp"
#include "detail/descriptor_check.hpp"
#include "detail/elf_check.hpp"
#include "detail/hook_runner.hpp"
#include "detail/metadata_check.hpp"
#include "detail/preflight.hpp"
#include "detail/preflight_memo.hpp"
#include "swap_timing.hpp"
#include "error.hpp"
#include "loaded_module.hpp"
#include "module_slot.hpp"
#include "plugin.h"
#include "record.hpp"
#include "registry.hpp"
#include "detail/sha256.hpp"
#include "detail/shadow.hpp"
#include "detail/source.hpp"
