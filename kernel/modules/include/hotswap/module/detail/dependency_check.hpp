// The policy covers the whole load: a plugin's own dependencies.
//
// ld.so would load every DT_NEEDED library of a plugin from its RPATH or
// RUNPATH, then the system directories, with none of the checks the plugin
// itself passed. So before dlopen each search path and each dependency is
// read from the ELF bytes and judged:
//
//   - every RPATH/RUNPATH entry must lie inside the allowed directory; $ORIGIN
//     means the ORIGINAL file's directory (not the shadow copy's); any other
//     $-token, or an empty entry (the current directory), is refused;
//   - a dependency found in one of those entries is read like a plugin
//     (directory, owner, mode, size cap, hash allow list, ELF check, its own
//     dependencies) and must name itself by that SONAME: the loader then
//     dlopens those checked bytes from a sealed memfd first, and ld.so binds
//     the plugin's DT_NEEDED to it by SONAME, so what was checked is what runs
//     (a file replaced afterwards changes nothing, not even for a rollback);
//   - any other dependency must be a system library: already loaded, or a
//     root-owned file not writable by group or others in a system directory.
//
// A refusal names the dependency or the search path entry.
#pragma once

#include <dlfcn.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "elf_check.hpp"
#include <hotswap/module/error.hpp>
#include "source.hpp"
#include "../checked_dependency.hpp"

namespace hotswap::modules::detail {

inline const std::vector<std::filesystem::path>& system_library_dirs() {
  static const std::vector<std::filesystem::path> dirs = {
#if defined(__x86_64__)
      "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
#elif defined(__aarch64__)
      "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
#endif
      "/lib64", "/usr/lib64", "/lib", "/usr/lib"};
  return dirs;
}

inline bool is_system_library(const std::string& name) {
  if (void* h = ::dlopen(name.c_str(), RTLD_NOLOAD | RTLD_LAZY)) {  // already part of the process
    ::dlclose(h);
    return true;
  }
  for (const auto& dir : system_library_dirs()) {
    struct stat st{};
    if (::stat((dir / name).c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == 0 &&
        (st.st_mode & (S_IWGRP | S_IWOTH)) == 0)
      return true;
  }
  return false;
}

inline void collect_dependencies(const plugin_file& f, const elf_facts& facts, const source_policy& policy, int depth,
                                 std::vector<checked_dependency>& out) {
  auto refuse = [&](const std::string& cause) {
    return module_error(module_errc::dependency_refused, f.path, "dependency refused: " + cause);
  };
  if (depth > 8) throw refuse("dependencies nested more than 8 deep");
  const std::filesystem::path allowed = policy.allowed_dir.empty() ? std::filesystem::path() : real_path_of(policy.allowed_dir);
  const std::string origin = f.real_path.parent_path().string();
  std::vector<std::filesystem::path> search;
  for (const std::string* list : {&facts.rpath, &facts.runpath}) {
    std::string_view rest = *list;
    while (!list->empty()) {
      const auto colon = rest.find(':');
      std::string entry(rest.substr(0, colon));
      for (const char* token : {"${ORIGIN}", "$ORIGIN"})
        for (auto at = entry.find(token); at != std::string::npos; at = entry.find(token))
          entry.replace(at, std::string_view(token).size(), origin);
      const char* kind = list == &facts.rpath ? "RPATH" : "RUNPATH";
      if (entry.empty()) throw refuse(std::string("an empty ") + kind + " entry (the current directory)");
      if (entry.find('$') != std::string::npos)
        throw refuse(std::string(kind) + " entry '" + entry + "' uses a token other than $ORIGIN");
      std::filesystem::path dir = std::filesystem::path(entry).lexically_normal();
      std::error_code ec;
      if (auto real = std::filesystem::canonical(dir, ec); !ec) dir = real;
      if (!allowed.empty() && dir != allowed && !path_within(dir, allowed))
        throw refuse(std::string(kind) + " entry '" + entry + "' lies outside the allowed directory " + allowed.string());
      search.push_back(dir);
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  for (const std::string& needed : facts.needed) {
    if (needed.find('/') != std::string::npos) throw refuse("'" + needed + "' is a path, not a library name");
    bool found = false;
    for (const auto& dir : search) {
      std::error_code ec;
      if (!std::filesystem::exists(dir / needed, ec)) continue;
      found = true;
      plugin_file dep;
      try {
        dep = read_plugin_file(dir / needed, policy);
      } catch (const module_error& e) {
        throw refuse("'" + needed + "': " + e.what());
      }
      dep.fd.reset();  // loaded from its bytes, never through the file
      elf_facts dep_facts;
      if (auto p = check_elf(dep.view(), &dep_facts, policy.elf)) throw refuse("'" + needed + "': " + p->cause);
      if (dep_facts.soname != needed)
        throw refuse("'" + needed + "' names itself '" + dep_facts.soname +
                     "' (DT_SONAME): the host loads checked dependencies by SONAME");
      collect_dependencies(dep, dep_facts, policy, depth + 1, out);
      bool seen = false;
      for (const auto& d : out) seen = seen || d.soname == needed;
      if (!seen)
        out.push_back({needed, std::move(dep), dep_facts.load_segments, std::move(dep_facts.exported),
                       std::move(dep_facts.thread_exit_imports)});
      break;
    }
    if (!found && !is_system_library(needed))
      throw refuse("'" + needed + "' is neither in the allowed directory (through RPATH/RUNPATH) nor a root-owned "
                   "system library");
  }
}

/// The dependencies to load first (dependencies before dependents), or throws
/// module_error(dependency_refused) naming the dependency or search path.
inline std::vector<checked_dependency> check_dependencies(const plugin_file& f, const elf_facts& facts,
                                                          const source_policy& policy) {
  std::vector<checked_dependency> out;
  detail::collect_dependencies(f, facts, policy, 0, out);
  return out;
}

}  // namespace hotswap::modules::detail
