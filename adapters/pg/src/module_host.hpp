// The kernel side of one backend: its own hotswap::modules::registry.
//
// Each PostgreSQL backend is a process of its own, so each embeds the modules
// layer whole: every load goes through the loader's checks (allowed directory,
// owner and mode, ELF, metadata note, seal), a shadow copy (a sealed memfd by
// default: nothing on disk, nothing to clean after a crash) and dlopen with
// RTLD_LOCAL. What a session runs is a pin on one version; dropping it lets the
// version unload on a worker once nothing else holds it.
//
// This file compiles without PostgreSQL's headers (they redefine printf,
// snprintf and friends as macros, which the C++ library does not survive);
// backend.cpp, the PostgreSQL side, talks to it through plain types.
//
// Threads: the kernel runs plugin hooks, unloads and reclamation on threads of
// its own. PostgreSQL's signal handlers must only run on the backend's thread,
// so every entry point here blocks all signals while it runs: threads started
// meanwhile inherit the full mask and never take a signal.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

#include <hotswap/domain.hpp>
#include <hotswap/module/registry.hpp>

#include "hotswap/pg/container_api.h"

namespace hotswap::pg {

using container_pin = modules::module_pin<hotswap_pg_container_api>;

struct host_settings {
  std::filesystem::path container_dir;  ///< the only directory containers load from
  modules::shadow_mode shadow = modules::shadow_mode::memory;
};

/// A version this backend loaded, pinned.
struct loaded_version {
  container_pin pin;
  std::string sha256;
  std::string build;
};

class module_host {
 public:
  /// Built with every signal blocked: the domain starts its reclaimer thread here.
  static std::unique_ptr<module_host> create(const host_settings& settings);
  explicit module_host(const host_settings& settings);
  module_host(const module_host&) = delete;
  module_host& operator=(const module_host&) = delete;

  /// Loads `file` as the newest version of `name` in this backend and pins it.
  /// Throws modules::module_error (nothing loaded then); with `expected_sha256`,
  /// other bytes are refused (hash_mismatch) before any of their code runs. No
  /// preflight: the backend that asked for the swap ran it (preflight.hpp).
  loaded_version load(const std::string& principal, const std::string& name, const std::filesystem::path& file,
                      const std::string& expected_sha256 = {});
  /// The SHA-256 of `file`'s bytes after the loader's source checks (directory,
  /// owner, mode, size). Throws modules::module_error.
  std::string sha256_of(const std::filesystem::path& file) const;
  /// Drops a pin; the version unloads on a worker once nothing holds it.
  void release(container_pin& pin);
  /// Audit lines the kernel produced since the last call (from any thread),
  /// for the backend to log on its own thread.
  std::deque<std::string> take_audit_lines();

 private:
  void collect(const modules::module_event& e);

  std::mutex audit_mutex_;
  std::deque<std::string> audit_lines_;  // guarded by audit_mutex_
  domain domain_;
  modules::registry registry_;
};

/// A module_error's code as a five-character SQLSTATE.
const char* sqlstate_of(modules::module_errc code) noexcept;

/// Checks that a loaded table is usable: every function has a name and code.
/// Throws modules::module_error(bad_descriptor) naming the file.
void check_table(const hotswap_pg_container_api& table, const std::string& file);

}  // namespace hotswap::pg
