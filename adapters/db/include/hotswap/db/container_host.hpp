// The containers of one database: loaded, swapped, rolled back, watched.
//
// A container_host is what the original called a database's container cache.
// It owns a hotswap::modules::registry (shadow copies, history, rollback, audit log)
// whose modules serve the container interface (container_api.h), a domain,
// and optionally a directory watcher that swaps a container when its file gets
// new content. Connections (connection.hpp) attach to its containers.
//
//   hotswap::db::container_host host({.container_dir = "/srv/containers"});
//   host.load("pricing", "/srv/containers/pricing.so");
//   hotswap::db::connection conn(host, db);  conn.attach("pricing");
//   host.swap("pricing", "/srv/containers/pricing.so");   // or host.watch()
//
// Caching (the original's per-database property): with `shadow_copies` on,
// each version is loaded from a private copy named after the original, its
// modification time and its content (the module loader's scheme:
// hs.<pid>.<serial>.<mtime ns>.<size>.<sha256 prefix>.<original name>), so the
// original may be overwritten at any time. Off, the original is loaded in place
// (for debuggers); one path is then loaded once at a time, so the next
// version must come from another file name.
//
// Change detection costs the call path nothing: a swap bumps `generation()`,
// and a connection compares it with the one it last saw when a statement
// starts. No call ever looks at a file.
//
// A swap is refused (db_error used_by_schema) when a deterministic function of
// the serving version is used by an index, a generated column or a CHECK
// constraint of a known database (one a connection attached to), unless the
// caller asks for reindex: the host then swaps and runs REINDEX on each such
// index and table through a connection of its own, on the new version, and
// records in the database which build each index now holds (index_builds.hpp)
// so that connections of other processes still on another build refuse it.
//
// Connections move lazily (at their next statement), so a swap cannot know at
// once whether they took the new version. Each publish keeps a tally: how many
// connections were attached, how many moved, how many refused (their startup
// failed); swap_options::wait_for_connections waits for it, and moves() reads
// it later.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <hotswap/domain.hpp>
#include <hotswap/module/registry.hpp>
#include <hotswap/watch.hpp>

#include "container_api.h"
#include "error.hpp"
#include "index_builds.hpp"
#include "schema_uses.hpp"

namespace hotswap::db {

using container_api = hotswap_db_container_api;

struct host_options {
  /// The only directory containers are loaded from (required; the loader's policy).
  std::filesystem::path container_dir;
  /// The per-database caching switch: off loads the original file in place.
  bool shadow_copies = true;
  /// Where shadow copies go (empty: the loader's default private directory).
  std::filesystem::path shadow_dir;
  /// SHA-256 allow list (empty: any content).
  std::vector<std::string> sha256_allow;
  /// Owner and mode checks of container files (off only in tests of other checks).
  bool check_permissions = true;
  /// Audit events, unloads and the containers' own log lines (plugin_log). Thread-safe.
  modules::module_log log;
  /// Versions kept for rollback.
  std::size_t history = 8;
  /// Who the watcher's swaps are logged as.
  std::string watcher_principal = "watcher";
};

struct swap_options {
  std::string principal = "operator";
  /// Rebuild what the schema derived from the old version instead of refusing.
  bool reindex = false;
  /// How long swap() waits for every attached connection to move or refuse
  /// (connections move at their next statement). Zero: report what happened by return.
  std::chrono::milliseconds wait_for_connections{0};
};

/// How the connections attached to a container when a version was published took it.
struct move_tally {
  std::uint64_t connections = 0;  ///< attached when the version was published
  std::uint64_t moved = 0;        ///< now run it
  std::uint64_t refused = 0;      ///< stayed on their version: its startup (or function table) failed there
  std::string first_refusal;      ///< why the first one refused

  /// Not yet at a safe point (or detached, or moved straight on to a newer version).
  std::uint64_t pending() const noexcept { return connections > moved + refused ? connections - moved - refused : 0; }
  /// "2 of 3 connections moved, 1 refused (...)"
  std::string describe() const;
};

struct swap_report {
  std::uint64_t version = 0;   ///< now serving
  std::uint64_t replaced = 0;  ///< draining
  std::vector<schema_use> reindexed;
  move_tally connections;      ///< as of return; see swap_options::wait_for_connections
};

struct container_status {
  std::string name;
  std::string file;  ///< the file the serving version came from
  std::uint64_t serving = 0;
  std::string build;
  std::vector<modules::version_report> versions;  ///< serving, draining and history, oldest first
};

class container_host {
 public:
  explicit container_host(host_options options);
  ~container_host();
  container_host(const container_host&) = delete;
  container_host& operator=(const container_host&) = delete;

  /// Loads the first version of a container. Throws module_error.
  std::uint64_t load(const std::string& name, const std::filesystem::path& file,
                     const std::string& principal = "operator");
  /// Publishes `file` as the next version. Throws module_error or db_error; publishes nothing then.
  swap_report swap(const std::string& name, const std::filesystem::path& file, const swap_options& options = {});
  /// Publishes an earlier version's bytes again (as a new version number).
  swap_report rollback(const std::string& name, std::uint64_t version, const swap_options& options = {});

  std::vector<container_status> list();
  /// Schema uses of the serving version's deterministic functions in every known database.
  std::vector<schema_use> schema_uses(const std::string& name);

  /// Starts a watcher on container_dir: a container whose file gets new
  /// content is swapped (refusals go to the log; the serving version stays).
  void watch(std::chrono::milliseconds debounce = std::chrono::milliseconds(100));
  /// Waits until the watcher has handled everything written so far (tests).
  bool sync_watcher(std::chrono::nanoseconds timeout);

  /// Bumped after every publish. Acquire: a connection that sees a new value
  /// then pins at least that version (pairs with the release in bump()).
  std::uint64_t generation() const noexcept { return generation_.load(std::memory_order_acquire); }

  modules::module_ref<container_api> container(const std::string& name) { return registry_.get<container_api>(name); }
  modules::registry& modules() noexcept { return registry_; }
  domain& get_domain() noexcept { return domain_; }
  const host_options& options() const noexcept { return options_; }

  /// How the connections took `version` of `name` so far (all zero if unknown or forgotten).
  move_tally moves(const std::string& name, std::uint64_t version);

  /// Databases whose schema a swap checks; connections register theirs.
  void add_database(const std::string& path);
  void remove_database(const std::string& path);
  /// Called by connections: attachments counted for each publish's tally, and each move's outcome.
  void connection_attached(const std::string& name);
  void connection_detached(const std::string& name);
  void connection_moved(const std::string& name, std::uint64_t version, const std::string& refusal);

 private:
  swap_report publish(const std::string& name, const swap_options& options, bool rollback,
                       const std::filesystem::path& file, std::uint64_t version);
  std::vector<schema_use> uses_of(const std::string& name);
  void reindex(const std::string& name, const std::vector<schema_use>& uses);
  void bump() noexcept { generation_.fetch_add(1, std::memory_order_release); }  // pairs with generation()
  void emit_refusal(const std::string& principal, const std::string& name, const std::string& file,
                    const std::string& why);

  host_options options_;
  domain domain_;
  modules::registry registry_;
  std::atomic<std::uint64_t> generation_{1};
  std::mutex mutex_;                                   // the maps below
  std::condition_variable moved_;                      // a tally changed
  std::map<std::string, std::filesystem::path> files_; // container -> file its serving version came from
  std::map<std::string, int> databases_;               // path -> connections using it
  std::map<std::string, std::uint64_t> attached_;      // container -> connections attached to it
  std::map<std::pair<std::string, std::uint64_t>, move_tally> tallies_;  // (container, version) -> tally
  std::unique_ptr<watch::watcher> watcher_;                   // last: stopped first
};

}  // namespace hotswap::db
