// Checks a plugin's descriptor against what the host expects, before any of
// the plugin's functions is called.
//
// The descriptor is data from code we did not write: the ABI version first
// (nothing else can be read safely if it differs), then the size the plugin
// was built with, the required fields, the interface name and version, and
// the size of the function table. A refusal names the field and both sides.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <hotswap/module/error.hpp>
#include <hotswap/module/plugin.h>

namespace hotswap::modules {

/// What the host expects a plugin to implement.
struct interface_id {
  std::string name;
  std::uint32_t version = 0;
  std::size_t table_size = 0;
};

/// nullopt if `d` may be used for `expected`.
inline std::optional<load_problem> check_descriptor(const hotswap_plugin_descriptor* d, const interface_id& expected) {
  if (d == nullptr)
    return load_problem{module_errc::bad_descriptor, "bad descriptor: " HOTSWAP_PLUGIN_ENTRY_SYMBOL "() returned null"};
  if (d->abi_version != HOTSWAP_PLUGIN_ABI_VERSION)
    return load_problem{module_errc::abi_mismatch, "ABI mismatch: the plugin has ABI version " +
                                                       std::to_string(d->abi_version) + ", the host expects " +
                                                       std::to_string(HOTSWAP_PLUGIN_ABI_VERSION)};
  if (d->descriptor_size < sizeof(hotswap_plugin_descriptor))
    return load_problem{module_errc::bad_descriptor, "bad descriptor: " + std::to_string(d->descriptor_size) +
                                                         " bytes, the host needs " +
                                                         std::to_string(sizeof(hotswap_plugin_descriptor))};
  if (d->interface_name == nullptr || d->module_name == nullptr || d->build_version == nullptr ||
      d->table == nullptr || d->startup == nullptr || d->shutdown == nullptr)
    return load_problem{module_errc::bad_descriptor, "bad descriptor: a required field is missing"};
  if (expected.name != d->interface_name || expected.version != d->interface_version)
    return load_problem{module_errc::interface_mismatch,
                        "interface mismatch: the plugin implements '" + std::string(d->interface_name) +
                            "' version " + std::to_string(d->interface_version) + ", the host expects '" +
                            expected.name + "' version " + std::to_string(expected.version)};
  if (d->table_size < expected.table_size)
    return load_problem{module_errc::interface_mismatch, "interface mismatch: the plugin's table has " +
                                                             std::to_string(d->table_size) + " bytes, the host needs " +
                                                             std::to_string(expected.table_size)};
  return std::nullopt;
}

}  // namespace hotswap::modules
