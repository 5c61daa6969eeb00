// hotswap modules: swap real code (.so plugins) in a running process.
//
// The pieces, each in its own header:
//   plugin.h         the C ABI a plugin exports, and the few lines a C++ plugin needs
//   source.hpp       read a plugin file once, under a policy (directory, owner, mode, hash)
//   sha256.hpp       the hash behind shadow names, the allow list and the audit log
//   elf_check.hpp    refuse non-ELF, truncated, foreign or half-written files before dlopen
//   descriptor_check.hpp  refuse a descriptor of the wrong ABI, interface or shape
//   shadow.hpp       private copies (file, memfd, or in place) with never-reused names
//   record.hpp       a version's status, keepalives and the audit-log event type
//   loaded_module.hpp  one loaded version: dlopen, checks, lifecycle, verified unload
//   module_slot.hpp  a module behind a hotswap::slot: swap, call, pin, drain
//   registry.hpp     named modules, history, rollback, policies, principals, log
//
// The rule that makes unloading safe is the kernel's: a version's destructor
// (shutdown, dlclose) runs only after a grace period has passed since it was
// replaced and its last pin is gone. Callers inside a read section, sessions
// holding pins and the plugin's own keepalives all count; nothing else may call
// into a plugin. Build plugins with -fno-gnu-unique (GCC), or dlclose will keep
// them mapped and every version will be quarantined.
//
// When not to use this: plugins that cannot shut down cleanly (detached
// threads, callbacks registered with libraries that outlive them, thread_local
// objects with destructors on threads that never exit) will not unload; they
// are reported and quarantined, and each swap then costs address space.
#pragma once

#include "descriptor_check.hpp"
#include "elf_check.hpp"
#include "error.hpp"
#include "loaded_module.hpp"
#include "module_slot.hpp"
#include "plugin.h"
#include "record.hpp"
#include "registry.hpp"
#include "sha256.hpp"
#include "shadow.hpp"
#include "source.hpp"
