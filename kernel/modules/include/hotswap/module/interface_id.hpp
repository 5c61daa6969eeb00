// What a host expects a plugin to implement: an interface's name, its version
// and the size of its function table. interface_of<Interface>() spells it from
// the interface's traits (plugin.h), as hosts usually do.
//
//   mods.add("ops", "calc", hotswap::modules::interface_of<calc_api>(), "/srv/plugins/calc.so");
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "plugin.h"

namespace hotswap::modules {

/// What the host expects a plugin to implement.
struct interface_id {
  std::string name;
  std::uint32_t version = 0;
  std::size_t table_size = 0;
};

/// The interface a host expects: name and version must match the plugin's,
/// and the plugin's table must be at least `table_size` bytes.
template <class Interface>
interface_id interface_of() {
  return {interface_traits<Interface>::name, interface_traits<Interface>::version, sizeof(Interface)};
}

}  // namespace hotswap::modules
