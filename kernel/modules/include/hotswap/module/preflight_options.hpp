// How a loader runs the preflight: the candidate loaded in a child process
// (hotswap-preflight) before it may run in the host (detail/preflight.hpp).
// Whether a load runs it is per request (load_request, request_options).
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>

#ifndef HOTSWAP_PREFLIGHT_HELPER
#define HOTSWAP_PREFLIGHT_HELPER ""
#endif

namespace hotswap::modules {

struct preflight_options {
  /// The hotswap-preflight program. CMake points the default at the built one,
  /// or for an installed package at <prefix>/libexec/hotswap/hotswap-preflight
  /// (HOTSWAP_PREFLIGHT_HELPER). Set it to use another; when it is not
  /// executable, the loader looks next to the host's executable (and in
  /// ../libexec/hotswap from there) before it refuses.
  std::filesystem::path helper = HOTSWAP_PREFLIGHT_HELPER;
  /// Run startup, self_test and shutdown in the child too (they must then
  /// tolerate running twice, e.g. not hold an exclusive resource the serving
  /// version holds). Off: only constructors, the entry point and the checks.
  bool run_hooks = true;
  std::chrono::nanoseconds deadline = std::chrono::seconds(10);
  /// Passes the loader remembers by content (preflight_memo.hpp): the same
  /// bytes for the same interface are not tried in a child again. 0: every time.
  std::size_t remembered_passes = 64;
};

}  // namespace hotswap::modules
