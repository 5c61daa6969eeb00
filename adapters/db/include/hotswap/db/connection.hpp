// One SQLite connection's view of the containers: trampolines, a pin, safe points.
//
// Attaching a container registers one host-owned trampoline per function with
// sqlite3_create_function_v2, once. A trampoline finds, through its user data,
// the function of the version this connection runs and calls it with the
// connection's state; the connection holds a pin on that version, so its code
// stays loaded however many swaps happen meanwhile.
//
//   hotswap::db::connection conn(host, db, move_policy::next_statement);
//   conn.attach("pricing");                     // startup for this connection
//   sqlite3_exec(db, "SELECT price(x) FROM t", ...);
//
// Moving to a newer version happens only at a safe point: when a statement
// starts (SQLite's SQLITE_TRACE_STMT, before its first instruction) and no
// other statement of the connection is running. There the old version's
// connection_shutdown runs, then the new one's connection_startup; so a
// statement, its triggers and the statements its functions run all see one
// version, and a long statement finishes on the version it started with.
// Policies, switchable at any time: next_statement (the original's), next
// transaction (only when the starting statement opens a transaction) or never
// (the version attached is kept for the connection's life).
//
// Function lists. A new version's functions are matched by name and arity.
// New ones are registered at the move (SQLite allows adding a function while a
// statement runs; a statement naming one can be prepared from then on).
// Removed ones, and ones whose kind or flags changed, must be re-registered,
// which SQLite refuses (SQLITE_BUSY) while any statement is active and which
// expires every prepared statement; until the next idle safe_point() a removed
// function raises an SQL error and a changed one keeps its old flags.
//
// Indexes built by another build (index_builds.hpp). When the database
// records that an index using one of this connection's deterministic
// functions was built by another build of the container (another process
// swapped and rebuilt it), the connection refuses that index until it moves
// to that build: a statement naming the function fails to prepare ("not
// authorized to use function: tag"; last_error() says why), and any call of it,
// which every write to the index's table makes, fails with an SQL error naming
// the index and both builds. The record is re-read when the schema version
// changes, which every rebuild causes and which makes SQLite prepare
// statements again. The adapter owns the connection's authorizer for this.
// When a move is due (this process swapped) to the recorded build, a statement
// naming the function prepares, and its start moves the connection first; if
// the move fails there, the statement is interrupted (SQLITE_INTERRUPT, best
// effort: SQLite notices between rows).
//
// Errors: a failing container function becomes sqlite3_result_error on its
// statement; an exception that escapes a container is caught at the
// trampoline. A startup that fails leaves the connection on its previous
// version (started again with the state it had saved) and is reported in
// last_error() and the counters; the move is retried only for a newer version.
//
// Threading: like the sqlite3* it wraps, one thread at a time; set_policy()
// and counters() may be called from any thread. Destroy it before closing the
// connection, when no statement is active.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "container_host.hpp"

namespace hotswap::db {

enum class move_policy { next_statement, next_transaction, never };

const char* to_string(move_policy p) noexcept;
/// "statement", "transaction" or "never" (also the enumerator names). Throws std::invalid_argument.
move_policy parse_move_policy(const std::string& text);

struct connection_counters {
  std::uint64_t moves = 0;            ///< completed transitions (shutdown old, startup new)
  std::uint64_t failed_startups = 0;  ///< transitions refused by the new version's startup
  std::uint64_t registrations = 0;    ///< sqlite3_create_function_v2 calls that succeeded
  std::uint64_t busy_retries = 0;     ///< re-registrations put off by SQLITE_BUSY
};

class connection {
 public:
  connection(container_host& host, sqlite3* db, move_policy policy = move_policy::next_statement);
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  /// Pins the serving version of `container`, runs its connection_startup and
  /// registers its functions. Throws db_error or module_error.
  void attach(const std::string& container);

  void set_policy(move_policy p) noexcept {
    policy_.store(p, std::memory_order_relaxed);  // a flag read at the next statement start; no partner
  }
  move_policy policy() const noexcept { return policy_.load(std::memory_order_relaxed); }

  /// Call between statements: if none is active, moves now (policy allowing)
  /// and applies pending re-registrations. Returns false if a statement was active.
  bool safe_point();

  /// The version this connection runs (0 if not attached). Connection's thread.
  std::uint64_t version_of(const std::string& container) const;
  /// Why the last move of `container` failed ("" if none did). Connection's thread.
  std::string last_error(const std::string& container) const;
  /// Re-registrations still waiting for an idle safe point.
  std::size_t pending_registrations() const noexcept;
  connection_counters counters() const noexcept;

  sqlite3* handle() const noexcept { return db_; }
  container_host& host() const noexcept { return host_; }

  /// Off: this connection uses every index whatever build the database
  /// records for it (the host's connection that rebuilds them). Before attach().
  void guard_indexes(bool on) noexcept { guard_indexes_ = on; }

  /// The connection is being closed under us (a loadable extension's
  /// destructor hook): skip unregistering, SQLite is tearing the functions down.
  void closing() noexcept { closing_ = true; }

 private:
  struct attachment;
  struct registered_fn;

  static int on_trace(unsigned type, void* self, void* stmt, void* sql);
  static int on_authorize(void* self, int action, const char* arg1, const char* arg2, const char* db,
                          const char* trigger);
  static void scalar_trampoline(sqlite3_context* ctx, int argc, sqlite3_value** argv);
  static void step_trampoline(sqlite3_context* ctx, int argc, sqlite3_value** argv);
  static void final_trampoline(sqlite3_context* ctx);
  static void report(sqlite3_context* ctx, const registered_fn& f, int rc, hotswap_plugin_error& error);
  template <class Call>
  static void guarded_call(sqlite3_context* ctx, const registered_fn& f, Call&& call);

  void at_statement_start(sqlite3_stmt* stmt);
  bool statement_active(sqlite3_stmt* except) const;
  void move(attachment& a);
  void adopt_functions(attachment& a);
  bool register_fn(registered_fn& f, const hotswap_db_function* fn);
  void apply_pending();
  void unregister_all(attachment& a);
  void refresh_guards(bool force) noexcept;
  void move_if_allowed(sqlite3_stmt* starting, std::uint64_t generation);
  void interrupt_if_refused();

  container_host& host_;
  sqlite3* db_;
  std::string database_;  // file name, registered with the host for schema checks
  std::atomic<move_policy> policy_;
  std::uint64_t seen_generation_ = 0;
  bool closing_ = false;
  bool guard_indexes_ = true;
  sqlite3* records_ = nullptr;  // read-only, for the index build records (refresh_guards)
  unsigned seen_data_version_ = 0;
  bool recheck_at_start_ = false;  // a refused function was let through a prepare (on_authorize)
  std::int64_t seen_schema_version_ = -1;
  std::vector<std::unique_ptr<attachment>> attachments_;
  // Statistics: relaxed, no partner; read from other threads as a snapshot.
  std::atomic<std::uint64_t> moves_{0}, failed_startups_{0}, registrations_{0}, busy_retries_{0};
};

}  // namespace hotswap::db
