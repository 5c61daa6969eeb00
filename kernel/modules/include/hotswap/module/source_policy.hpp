// Which plugin files a loader reads: the allowed directory (real paths, no
// symlink out of it), owner and mode checks, an optional SHA-256 allow list,
// a size cap, the seal requirement and the ELF limits. Every file and every
// dependency is read under it (detail/source.hpp, detail/dependency_check.hpp).
//
//   hotswap::modules::source_policy p{.allowed_dir = "/srv/plugins", .sha256_allow = {"3a7b..."}};
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "elf_limits.hpp"

namespace hotswap::modules {

struct source_policy {
  /// Load only files whose real path (symlinks resolved) lies under this
  /// directory. Empty: anywhere (the registry requires it to be set).
  std::filesystem::path allowed_dir;
  /// Refuse files writable by group or others, files not owned by this
  /// process's effective user or root, and files whose mode grants their owner
  /// no read permission (checked even for root, whom the kernel lets read a
  /// mode-000 file). Turn off only for tests of other checks.
  bool check_permissions = true;
  /// SHA-256 digests (lowercase hex) a plugin must match. Empty: any content.
  std::vector<std::string> sha256_allow;
  /// Larger files are refused from fstat, before anything is read (plugins are
  /// small; a sparse 64 GiB file must not become a 64 GiB allocation).
  std::uint64_t max_file_size = std::uint64_t{256} << 20;
  /// Refuse plugins whose metadata note carries no seal (metadata_check.hpp).
  bool require_seal = true;
  /// What a plugin or dependency may ask ld.so to map (elf_check.hpp).
  elf_limits elf;
};

}  // namespace hotswap::modules
