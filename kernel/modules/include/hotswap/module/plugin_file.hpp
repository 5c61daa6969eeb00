// One plugin file as the loader read it, once: its path and real path, its
// bytes, identity (device, inode, mtime) and SHA-256, and the descriptor it
// was checked through. module_loader::read() makes one; open() and a slot's
// swap() take it, so what was checked is what gets loaded.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <hotswap/unique_fd.hpp>

namespace hotswap::modules {

/// One plugin file, read once.
struct plugin_file {
  std::filesystem::path path;       ///< as requested
  std::filesystem::path real_path;  ///< symlinks resolved
  std::shared_ptr<const std::vector<std::byte>> bytes;
  std::int64_t mtime_ns = 0;
  dev_t device = 0;  ///< with inode: the file's identity (hard links share it)
  ino_t inode = 0;
  std::string sha256;  ///< lowercase hex
  /// The descriptor everything was checked through; in-place loads go through
  /// it. Not kept in the registry's history (rollbacks load from the bytes).
  std::shared_ptr<const hotswap::unique_fd> fd;

  std::span<const std::byte> view() const noexcept { return {bytes->data(), bytes->size()}; }
};

}  // namespace hotswap::modules
