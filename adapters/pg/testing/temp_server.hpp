// A throwaway PostgreSQL 15 server with hotswap_pg preloaded, for the tests
// (tests/pg) and the stress rig's `pg` scenario: what both need to drive the
// extension through a real server.
//
// temp_server::start() makes a temporary directory (root-owned, 0755, under the
// sticky /tmp: what the loader's directory rules accept), copies the containers
// into containers/, runs initdb into pg/data, configures a Unix socket in sock/
// (no TCP), preloads the extension from the build tree and starts the server
// with pg_ctl; the destructor stops it and removes everything (kept when
// HOTSWAP_PG_KEEP is set). As root the server runs as `postgres` (runuser):
// PostgreSQL refuses root, and the loader accepts files owned by root or by the
// server's account. CREATE EXTENSION needs the control file in PostgreSQL's own
// share directory: the build tree's copy (naming the built library) is
// installed there when writable; otherwise start() says why it cannot run.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

namespace hotswap::pg {

/// Where the server's programs and the extension's build come from.
struct temp_server_options {
  std::filesystem::path bindir;         ///< initdb, pg_ctl (pg_config --bindir)
  std::filesystem::path sharedir;       ///< pg_config --sharedir: extension/ gets the control file
  std::filesystem::path extension_dir;  ///< the build tree's hotswap_pg.control and SQL script
  std::filesystem::path library;        ///< the built hotswap_pg.so, preloaded
  std::filesystem::path containers;     ///< every *.so here is copied into the server's container_dir
  std::string settings;                 ///< more postgresql.conf lines
};

class temp_server {
 public:
  /// A running server, or null with `why_not` set when this machine cannot run
  /// one (PostgreSQL not installed, extension directory not writable). Other
  /// failures (initdb, pg_ctl) throw std::runtime_error naming the log to read.
  static std::unique_ptr<temp_server> start(const temp_server_options& options, std::string* why_not);

  ~temp_server();
  temp_server(const temp_server&) = delete;
  temp_server& operator=(const temp_server&) = delete;

  /// libpq connection string for `user` on the server's socket, database postgres.
  std::string conninfo(const std::string& user = "postgres") const;
  std::filesystem::path containers() const { return root_ / "containers"; }
  std::filesystem::path root() const { return root_; }
  std::filesystem::path log() const { return root_ / "pg" / "server.log"; }

 private:
  temp_server() = default;
  std::string pg_ctl(const std::string& arguments) const;
  void watch_for_our_exit();

  temp_server_options options_;
  std::filesystem::path root_;
  std::string as_server_;  ///< "runuser -u postgres -- " as root, else empty
  bool started_ = false;
};

}  // namespace hotswap::pg
