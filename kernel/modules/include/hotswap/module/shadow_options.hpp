// Where the loader puts the private copy it dlopens (detail/shadow.hpp):
// a file in a private directory, a sealed memfd, or the file in place.
//
//   hotswap::modules::shadow_options s{.mode = hotswap::modules::shadow_mode::memory};
#pragma once

#include <filesystem>

namespace hotswap::modules {

enum class shadow_mode { file, memory, in_place };

struct shadow_options {
  shadow_mode mode = shadow_mode::file;
  /// Private directory for `file` mode. Empty: $XDG_RUNTIME_DIR/hotswap, else
  /// <temp>/hotswap-<euid>. Must be on a filesystem that allows exec mappings.
  std::filesystem::path dir;
  /// fsync each copy before dlopen. Off saves the flush on disk-backed
  /// directories; the copy is private and re-made after a crash anyway.
  bool fsync = true;
};

}  // namespace hotswap::modules
