// The host API a plugin is given (hotswap_host_api in plugin.h): keepalives
// and a log, bound to the plugin's version record and its loader. Kept apart
// from the image because a version whose code stays mapped may call it for
// the rest of the process: such links are kept forever (keep_forever).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "../plugin.h"
#include "../record.hpp"
#include "loader_context.hpp"

namespace hotswap::modules::detail {

/// What a plugin's hotswap_host_api points at (its context).
struct host_link {
  hotswap_host_api api{};
  std::shared_ptr<loader_context> ctx;
  std::shared_ptr<version_record> record;

  /// The api's functions point back at this link; `record` is set once the
  /// version has one (before startup, the first hook that can call them).
  explicit host_link(std::shared_ptr<loader_context> c) : ctx(std::move(c)) {
    api = {sizeof(hotswap_host_api), this, &keepalive_acquire, &keepalive_release, &log};
  }
  host_link(const host_link&) = delete;
  host_link& operator=(const host_link&) = delete;

 private:
  // Valid from startup until shutdown returns (for good if the version stays mapped).
  static int keepalive_acquire(void* link) { return static_cast<host_link*>(link)->record->try_hold() ? 1 : 0; }
  static void keepalive_release(void* link) {
    static_cast<host_link*>(link)->record->drop_hold();  // may unload the version: nothing after it
  }
  static void log(void* link, int level, const char* message) {
    const auto* l = static_cast<host_link*>(link);
    const version_identity& id = l->record->identity();
    l->ctx->emit({module_event_kind::plugin_log, {}, id.module, id.file, l->record->number(), 0, id.build_version, {},
                  "[" + std::to_string(level) + "] " + (message ? message : "")});
  }
};

/// Host links of versions whose code stays mapped: that code may still call
/// the host API, so they live (reachably) for the rest of the process.
inline void keep_forever(std::unique_ptr<host_link> link) {
  static std::mutex mutex;
  static std::vector<std::unique_ptr<host_link>> kept;
  std::lock_guard lock(mutex);
  kept.push_back(std::move(link));
}

}  // namespace hotswap::modules::detail
