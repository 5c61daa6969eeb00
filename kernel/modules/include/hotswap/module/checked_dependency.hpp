// A plugin's dependency from the allowed directory, as the loader checked it:
// its SONAME, its bytes, the mappings it adds and what it exports. The loader
// loads these checked bytes (never the file on disk again), and a version's
// record keeps them, so a rollback loads the same dependency it loaded first.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "plugin_file.hpp"

namespace hotswap::modules {

/// A dependency from the allowed directory, checked; loaded before the plugin.
struct checked_dependency {
  std::string soname;
  plugin_file file;
  std::uint32_t load_segments = 0;    ///< from its ELF check: mappings it adds
  std::vector<std::string> exported;  ///< what it could interpose from the global scope
  std::vector<std::string> thread_exit_imports;  ///< elf_facts::thread_exit_imports
};

}  // namespace hotswap::modules
