// The plugin's metadata note, read and checked before any of its code runs.
//
// HOTSWAP_PLUGIN places a hotswap_plugin_metadata in an ELF note (plugin.h);
// check_elf() finds it. Here it is checked against what the host expects: the
// ABI version, the interface name and version, text fields terminated, and the
// seal. The seal is the SHA-256 of the whole file with the seal's own 32 bytes
// read as zero, written after linking (hotswap-seal, run by hotswap_add_plugin).
// Any file that is part one build and part another, or that was changed after
// sealing, fails it: this is what catches a same-size upload caught half-way,
// which is otherwise a structurally valid ELF file.
//
// The seal costs a SHA-256 pass over the file, and the file's own SHA-256
// (source.hpp) is another. A loader remembers the SHA-256 of files whose seal
// held (loader_context::sealed): bytes with the same SHA-256 are the same
// bytes (the allow list rests on the same property), so their seal holds too
// and a swap back to a known build hashes its file once, not twice.
//
//   elf_facts facts;  check_elf(bytes, &facts);
//   auto md = read_metadata(bytes, facts);            // or a load_problem
//   if (auto p = check_metadata(*md, bytes, facts, interface_of<calc_api>(), true)) refuse(*p);
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <variant>

#include "descriptor_check.hpp"
#include "elf_check.hpp"
#include <hotswap/module/error.hpp>
#include <hotswap/module/plugin.h>
#include "../sha256.hpp"

namespace hotswap::modules::detail {

/// Where the seal sits in a file whose metadata descriptor starts at `metadata_offset`.
inline std::uint64_t seal_offset(std::uint64_t metadata_offset) noexcept {
  return metadata_offset + offsetof(hotswap_plugin_metadata, seal);
}

/// SHA-256 of `image` with the 32 seal bytes at `seal_at` read as zero.
inline sha256::digest seal_digest(std::span<const std::byte> image, std::uint64_t seal_at) {
  static constexpr std::byte zero[32] = {};
  sha256 h;
  h.update(image.first(seal_at));
  h.update(std::span<const std::byte>(zero, sizeof zero));
  h.update(image.subspan(seal_at + sizeof zero));
  return h.finish();
}

/// The metadata note's contents, or why there is none to use.
inline std::variant<hotswap_plugin_metadata, load_problem> read_metadata(std::span<const std::byte> image,
                                                                        const elf_facts& facts) {
  if (!facts.metadata_offset)
    return load_problem{module_errc::no_metadata,
                        "no metadata: the file has no hotswap metadata note (build it with HOTSWAP_PLUGIN or "
                        "HOTSWAP_PLUGIN_METADATA)"};
  if (facts.metadata_notes > 1) return load_problem{module_errc::no_metadata, "no metadata: more than one hotswap note"};
  if (facts.metadata_size < sizeof(hotswap_plugin_metadata) || *facts.metadata_offset + sizeof(hotswap_plugin_metadata) > image.size())
    return load_problem{module_errc::no_metadata, "no metadata: the hotswap note is " + std::to_string(facts.metadata_size) +
                                                      " bytes, the host needs " + std::to_string(sizeof(hotswap_plugin_metadata))};
  hotswap_plugin_metadata m;
  std::memcpy(&m, image.data() + *facts.metadata_offset, sizeof m);
  return m;
}

/// Whether the note carries a seal (all zero: none was written).
inline bool is_sealed(const hotswap_plugin_metadata& m) noexcept {
  static constexpr std::uint8_t unsealed[32] = {};
  return std::memcmp(m.seal, unsealed, sizeof unsealed) != 0;
}

inline std::optional<std::string> note_text(const char (&field)[HOTSWAP_PLUGIN_TEXT_MAX]) {
  const auto* end = std::find(field, field + HOTSWAP_PLUGIN_TEXT_MAX, '\0');
  if (end == field + HOTSWAP_PLUGIN_TEXT_MAX) return std::nullopt;
  return std::string(field, end);
}
/// nullopt if the metadata fits `expected` and (if sealed, or if `require_seal`) the seal holds.
/// `seal_held_before`: the seal of these very bytes (same SHA-256) held
/// before; it is not recomputed.
inline std::optional<load_problem> check_metadata(const hotswap_plugin_metadata& m, std::span<const std::byte> image,
                                                  const elf_facts& facts, const interface_id& expected,
                                                  bool require_seal, bool seal_held_before = false) {
  if (m.abi_version != HOTSWAP_PLUGIN_ABI_VERSION)
    return load_problem{module_errc::abi_mismatch, "ABI mismatch: the plugin's metadata says ABI version " +
                                                       std::to_string(m.abi_version) + ", the host expects " +
                                                       std::to_string(HOTSWAP_PLUGIN_ABI_VERSION) + " (nothing was run)"};
  const auto iface = detail::note_text(m.interface_name);
  if (!iface || !detail::note_text(m.module_name) || !detail::note_text(m.build_version))
    return load_problem{module_errc::no_metadata, "no metadata: a text field of the hotswap note is not terminated"};
  if (*iface != expected.name || m.interface_version != expected.version)
    return load_problem{module_errc::interface_mismatch,
                        "interface mismatch: the plugin's metadata says '" + *iface + "' version " +
                            std::to_string(m.interface_version) + ", the host expects '" + expected.name +
                            "' version " + std::to_string(expected.version) + " (nothing was run)"};
  if (!is_sealed(m)) {
    if (!require_seal) return std::nullopt;
    return load_problem{module_errc::seal_broken,
                        "seal broken: the plugin is not sealed (hotswap_add_plugin runs hotswap-seal after linking)"};
  }
  if (seal_held_before) return std::nullopt;
  const sha256::digest d = seal_digest(image, seal_offset(*facts.metadata_offset));
  if (std::memcmp(d.data(), m.seal, d.size()) != 0)
    return load_problem{module_errc::seal_broken,
                        "seal broken: the file's bytes do not match the seal written at build time (a copy caught "
                        "half-way, parts of two builds, or changed after sealing)"};
  return std::nullopt;
}

}  // namespace hotswap::modules::detail
