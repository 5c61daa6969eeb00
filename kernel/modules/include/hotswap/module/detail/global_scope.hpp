// Did a loaded object join the global symbol scope?
//
// The loader opens every plugin and dependency RTLD_LOCAL: their symbols bind
// only within their own load. Code that runs in the plugin can change that by
// opening itself (or a dependency) again with RTLD_NOLOAD | RTLD_GLOBAL. From
// then on every lookup that searches the global scope (every other module's
// undefined symbols, dlsym(RTLD_DEFAULT)) finds its definitions first, e.g.
// another module's call to its checked dependency's function lands in the
// plugin. glibc offers no "is this object global?" query, but the effect is
// observable exactly: the object interposes a symbol if, and only if, a
// global-scope lookup of a name it exports resolves into it. So we look each
// exported name up (dlsym(RTLD_DEFAULT)) and ask dladdr1 which object the
// answer lies in. A name that an earlier global object also defines resolves
// there and is no threat: lookups never reach the plugin's copy.
//
// Seen: promotion done by constructors, the entry point and the hooks that
// ran before the check. Not seen: a promotion done later (a thread, a timer).
#pragma once

#include <dlfcn.h>
#include <link.h>

#include <optional>
#include <string>
#include <vector>

namespace hotswap::modules::detail {

/// The first of `exported` that a global-scope lookup resolves into the object
/// `handle` was opened as, if any.
inline std::optional<std::string> interposed_symbol(void* handle, const std::vector<std::string>& exported) {
  link_map* self = nullptr;
  if (handle == nullptr || ::dlinfo(handle, RTLD_DI_LINKMAP, &self) != 0 || self == nullptr) return std::nullopt;
  for (const std::string& name : exported) {
    void* found = ::dlsym(RTLD_DEFAULT, name.c_str());
    if (found == nullptr) continue;
    Dl_info info{};
    void* owner = nullptr;
    if (::dladdr1(found, &info, &owner, RTLD_DL_LINKMAP) != 0 && owner == self) return name;
  }
  return std::nullopt;
}

}  // namespace hotswap::modules::detail
