// A real PostgreSQL 15 server for the hotswap_pg tests (hotswap::pg::temp_server,
// adapters/pg/testing), and libpq sessions to drive it.
#pragma once

#include <libpq-fe.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "temp_server.hpp"

namespace hotswap::pg::test {

namespace fs = std::filesystem;

/// What a statement that failed said.
struct sql_error {
  std::string sqlstate;
  std::string message;
};

/// One libpq connection: a backend of its own.
class session {
 public:
  explicit session(const std::string& conninfo) : conn_(PQconnectdb(conninfo.c_str())) {
    if (PQstatus(conn_) != CONNECTION_OK) throw std::runtime_error(std::string("connect: ") + PQerrorMessage(conn_));
    PQsetNoticeReceiver(conn_, &session::on_notice, this);
  }
  ~session() { PQfinish(conn_); }
  session(const session&) = delete;
  session& operator=(const session&) = delete;

  /// Runs `sql`; the first column of the first row (empty if none). Fails the test on error.
  std::string value(const std::string& sql) {
    std::unique_ptr<PGresult, void (*)(PGresult*)> r(PQexec(conn_, sql.c_str()), &PQclear);
    const ExecStatusType status = PQresultStatus(r.get());
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
      ADD_FAILURE() << sql << ": " << PQresultErrorMessage(r.get());
      return {};
    }
    return status == PGRES_TUPLES_OK && PQntuples(r.get()) > 0 ? PQgetvalue(r.get(), 0, 0) : "";
  }
  void exec(const std::string& sql) { value(sql); }
  /// Runs `sql`, which must fail; what it said.
  sql_error error(const std::string& sql) {
    std::unique_ptr<PGresult, void (*)(PGresult*)> r(PQexec(conn_, sql.c_str()), &PQclear);
    if (PQresultStatus(r.get()) != PGRES_FATAL_ERROR) {
      ADD_FAILURE() << sql << ": succeeded, an error was expected";
      return {};
    }
    const char* state = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
    return {state != nullptr ? state : "", PQresultErrorMessage(r.get())};
  }
  int backend_pid() const { return PQbackendPID(conn_); }
  /// Notices and warnings received so far, cleared.
  std::vector<std::string> take_notices() { return std::exchange(notices_, {}); }

 private:
  static void on_notice(void* self, const PGresult* r) {
    static_cast<session*>(self)->notices_.emplace_back(PQresultErrorMessage(r));
  }
  PGconn* conn_;
  std::vector<std::string> notices_;
};

/// The suite's server, shared by every case (started once per process).
class pg_suite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (server_ != nullptr || !skip_.empty()) return;
    server_ = temp_server::start({HOTSWAP_PG_BINDIR, HOTSWAP_PG_SHAREDIR, HOTSWAP_PG_EXTENSION_DIR, HOTSWAP_PG_LIBRARY,
                                  HOTSWAP_PG_CONTAINER_DIR, "max_connections = 30\nshared_buffers = 32MB\n"},
                                 &skip_)
                  .release();
    if (server_ == nullptr) return;
    session admin(server_->conninfo());
    admin.exec("CREATE EXTENSION hotswap_pg");
    for (const char* f : {"'container_version()', 'int4'", "'session_calls()', 'int8'", "'add_one(int4)', 'int4'",
                          "'fail(text)', 'int4'"})
      admin.exec(std::string("SELECT hotswap.define('ver', ") + f + ")");
    admin.exec("SELECT hotswap.swap('ver', 'pg_version_v1.so')");
  }
  static void TearDownTestSuite() {}  // the server stops at exit (see environment below)

  void SetUp() override {
    if (server_ == nullptr) GTEST_SKIP() << skip_;
  }

  static std::string conninfo(const std::string& user = "postgres") { return server_->conninfo(user); }
  static temp_server& server() { return *server_; }

  /// Publishes `file` as the next version of 'ver'; returns its version number.
  static std::string swap(session& admin, const std::string& file, int wait_ms = 0) {
    return admin.value("SELECT version FROM hotswap.swap('ver', '" + file + "', " + std::to_string(wait_ms) + ")");
  }

  static inline temp_server* server_ = nullptr;
  static inline std::string skip_;
};

/// Stops the shared server when the test program ends.
class pg_environment : public ::testing::Environment {
 public:
  void TearDown() override {
    delete pg_suite_access::server();
    pg_suite_access::server() = nullptr;
  }

 private:
  struct pg_suite_access : pg_suite {
    static temp_server*& server() { return server_; }
  };
};

}  // namespace hotswap::pg::test
