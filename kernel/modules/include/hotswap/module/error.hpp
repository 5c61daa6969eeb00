// Why a plugin was not loaded, swapped or unloaded: one exception type that
// names the file and the cause, with a code a program can branch on.
//
//   try { mods.swap("calc", "/srv/plugins/calc.so", "alice"); }
//   catch (const hotswap::modules::module_error& e) {
//     // e.what(): "/srv/plugins/calc.so: startup failed: [2] database unreachable"
//     // e.code() == hotswap::modules::module_errc::startup_failed; the old version still serves
//   }
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>

namespace hotswap::modules {

enum class module_errc {
  // reading the file
  not_found,
  permission_denied,
  not_regular_file,
  empty_file,
  io_error,
  too_large,
  resource_exhausted,
  changed_while_loading,
  // policy (registry)
  outside_allowed_dir,
  insecure_permissions,
  wrong_owner,
  hash_not_allowed,
  hash_mismatch,  ///< the bytes are not the ones the request expected (load_request::expected_sha256)
  principal_not_allowed,
  dependency_refused,
  // the bytes
  not_elf,
  truncated,
  wrong_elf_class,
  wrong_machine,
  not_shared_object,
  no_metadata,
  seal_broken,
  elf_limit,
  // loading
  shadow_failed,
  load_failed,
  no_descriptor,
  abi_mismatch,
  interface_mismatch,
  bad_descriptor,
  path_busy,
  preflight_failed,
  retained_limit,
  mapping_limit,
  global_scope,
  // lifecycle
  startup_failed,
  migrate_failed,
  self_test_failed,
  hook_timeout,
  // publishing
  backpressure,
  conflict,
  // registry
  unknown_module,
  unknown_version,
  bad_policy,  ///< a canary policy that cannot work, or shadow runs for a plugin that did not declare them
};

/// A refusal found before anything of the plugin ran: the code and a cause
/// without the file name (the caller adds it when it throws module_error).
struct load_problem {
  module_errc code;
  std::string cause;
};

inline const char* to_string(module_errc c) noexcept {
  switch (c) {
    case module_errc::not_found: return "not found";
    case module_errc::permission_denied: return "permission denied";
    case module_errc::not_regular_file: return "not a regular file";
    case module_errc::empty_file: return "empty file";
    case module_errc::io_error: return "i/o error";
    case module_errc::too_large: return "too large";
    case module_errc::resource_exhausted: return "resource exhausted";
    case module_errc::changed_while_loading: return "changed while loading";
    case module_errc::outside_allowed_dir: return "outside the allowed directory";
    case module_errc::insecure_permissions: return "insecure permissions";
    case module_errc::wrong_owner: return "wrong owner";
    case module_errc::hash_not_allowed: return "hash not allowed";
    case module_errc::hash_mismatch: return "hash mismatch";
    case module_errc::principal_not_allowed: return "principal not allowed";
    case module_errc::dependency_refused: return "dependency refused";
    case module_errc::not_elf: return "not an ELF file";
    case module_errc::truncated: return "truncated";
    case module_errc::wrong_elf_class: return "wrong ELF class";
    case module_errc::wrong_machine: return "wrong machine";
    case module_errc::not_shared_object: return "not a shared object";
    case module_errc::no_metadata: return "no metadata";
    case module_errc::seal_broken: return "seal broken";
    case module_errc::elf_limit: return "ELF limit";
    case module_errc::shadow_failed: return "shadow copy failed";
    case module_errc::load_failed: return "dlopen failed";
    case module_errc::no_descriptor: return "no descriptor";
    case module_errc::abi_mismatch: return "ABI mismatch";
    case module_errc::interface_mismatch: return "interface mismatch";
    case module_errc::bad_descriptor: return "bad descriptor";
    case module_errc::path_busy: return "path already loaded";
    case module_errc::preflight_failed: return "preflight failed";
    case module_errc::retained_limit: return "retained limit";
    case module_errc::mapping_limit: return "mapping limit";
    case module_errc::global_scope: return "promoted to global scope";
    case module_errc::startup_failed: return "startup failed";
    case module_errc::migrate_failed: return "migrate failed";
    case module_errc::self_test_failed: return "self test failed";
    case module_errc::hook_timeout: return "hook timeout";
    case module_errc::backpressure: return "backpressure";
    case module_errc::conflict: return "conflict";
    case module_errc::unknown_module: return "unknown module";
    case module_errc::unknown_version: return "unknown version";
    case module_errc::bad_policy: return "bad policy";
  }
  return "unknown error";
}

class module_error : public std::runtime_error {
 public:
  module_error(module_errc code, std::filesystem::path file, const std::string& cause)
      : std::runtime_error(file.string() + ": " + cause), code_(code), file_(std::move(file)) {}

  module_errc code() const noexcept { return code_; }
  const std::filesystem::path& file() const noexcept { return file_; }

 private:
  module_errc code_;
  std::filesystem::path file_;
};

}  // namespace hotswap::modules
