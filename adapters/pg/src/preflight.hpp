// The preflight of a PostgreSQL container: loaded first in a forked copy of the backend.
//
// The kernel's preflight (kernel/modules, hotswap-preflight) execs a small
// program that dlopens the candidate. A PostgreSQL container cannot load
// there: it binds to symbols of the postgres executable (palloc, errstart,
// CurrentMemoryContext...) that no other program has. So the backend that asks
// for a swap forks itself instead (no exec): the child has every symbol the
// container needs, runs this backend's full load (checks, shadow copy, dlopen
// and constructors, the descriptor and the plugin hooks, the table check) and
// reports one line over a pipe, then _exit()s. A crash, an exit, a loader
// assertion or silence past the deadline refuses the swap before the serving
// backend runs any of the candidate's code.
//
// The child is a copy of a backend holding a PGPROC and attached to shared
// memory: it runs no PostgreSQL code of its own (`in_child` clears the
// backend's exit callbacks) and never runs the per-session hooks (they may use
// SPI, which would act as the parent). Cost: one fork of the backend (page
// tables of its mappings, shared_buffers included) plus one load; measured in
// adapters/pg/README.md.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>

#include "module_host.hpp"

namespace hotswap::pg {

struct preflight_outcome {
  bool passed = false;
  std::string sha256;  ///< of the bytes the child loaded (passed only)
  std::string why;     ///< refusal: the child's error, signal or exit status
  std::string sqlstate = "38000";  ///< refusal: the child's error class (external_routine_exception if it died)
  std::chrono::nanoseconds took{};
};

/// Forks, loads `file` as container `name` in the child, waits up to `deadline`.
/// `in_child` runs first in the child (the host detaches it from the backend).
preflight_outcome preflight_in_fork(const host_settings& settings, const std::string& name,
                                    const std::filesystem::path& file, std::chrono::milliseconds deadline,
                                    void (*in_child)());

}  // namespace hotswap::pg
