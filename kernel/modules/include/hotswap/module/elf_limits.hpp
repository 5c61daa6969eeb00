// What a plugin file (or one of its dependencies) may ask ld.so to map:
// program headers, loadable segments, address space. Part of a loader's
// source_policy (source_policy.hpp); the ELF check (detail/elf_check.hpp)
// refuses a file over any of them before dlopen.
#pragma once

#include <cstdint>

namespace hotswap::modules {

/// What a plugin file may ask ld.so to map. A typical plugin or library has
/// 8 to 14 program headers, 4 or 5 of them PT_LOAD, and maps a few MiB.
/// Raise these only for a plugin that really needs more (a huge static table).
struct elf_limits {
  std::uint32_t max_program_headers = 64;
  std::uint32_t max_load_segments = 16;
  /// From the lowest loadable page to the end of the highest segment in memory.
  std::uint64_t max_mapped_bytes = std::uint64_t{1} << 30;
};

}  // namespace hotswap::modules
