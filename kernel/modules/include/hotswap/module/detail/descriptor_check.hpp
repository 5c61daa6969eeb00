// Checks a plugin's descriptor against what the host expects, before any of
// the plugin's functions is called.
//
// The descriptor is data from code we did not write: the ABI version first
// (nothing else can be read safely if it differs), then the size the plugin
// was built with, the required fields, the interface name and version, and
// the size of the function table. A refusal names the field and both sides.
// Then the descriptor must say what the metadata note said before anything ran
// (module name and build): the host and the preflight child both check it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <hotswap/module/error.hpp>
#include <hotswap/module/plugin.h>
#include "../interface_id.hpp"

namespace hotswap::modules::detail {

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

/// nullopt if a checked descriptor names the module and build its metadata note named.
inline std::optional<load_problem> check_descriptor_matches_note(const hotswap_plugin_descriptor& d,
                                                                 std::string_view note_module,
                                                                 std::string_view note_build) {
  if (note_module == d.module_name && note_build == d.build_version) return std::nullopt;
  return load_problem{module_errc::bad_descriptor, "bad descriptor: the descriptor says '" + std::string(d.module_name) +
                                                       "' " + d.build_version + ", the metadata note says '" +
                                                       std::string(note_module) + "' " + std::string(note_build)};
}

}  // namespace hotswap::modules::detail
