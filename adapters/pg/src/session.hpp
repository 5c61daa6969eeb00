// This backend's session: the containers it runs, when it moves, and the dispatcher.
//
// A session runs one pinned version per container it has used. It moves only
// at a transition point, the first statement or container call of each new
// transaction (hotswap.transition = transaction, the default), of each new
// top-level statement (statement), or never: the point is recognised by the
// backend's local transaction id (MyProc->lxid) and the statement start time
// PostgreSQL sets for each top-level statement, so a statement that a
// container function runs through SPI, or a planner that folds a function
// call, never moves the session in the middle. At a transition point one
// atomic load of the shared generation says whether anything was swapped.
//
// A move is: load the new version in this backend (every loader check; the
// bytes must hash to what the swap published), then the old version's
// session_save and session_shutdown, then the new one's session_startup with
// the saved bytes. Each hook runs in an internal subtransaction: a failure or
// an ERROR it raises keeps the session on its old version (started again with
// the same bytes) with a WARNING, and the version is not tried again.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "module_host.hpp"

namespace hotswap::pg {

enum class transition_mode { transaction = 0, statement = 1, never = 2 };

/// The extension's settings (GUCs, extension.cpp).
struct settings {
  char* container_dir = nullptr;
  int shadow = static_cast<int>(modules::shadow_mode::memory);
  bool preflight = true;
  bool preflight_remember = true;
  int preflight_timeout_ms = 10000;
  int transition = static_cast<int>(transition_mode::transaction);
};
extern settings gucs;

/// Host settings from the GUCs; throws std::invalid_argument when container_dir is unset.
host_settings current_host_settings();
/// This backend's module host, created at first use (never in the postmaster).
module_host& host();

/// The ExecutorStart hook's part: move now if this is a transition point.
void on_statement_start();
/// Logs the kernel's audit lines collected so far (on the backend's thread).
void log_audit_lines();

}  // namespace hotswap::pg
