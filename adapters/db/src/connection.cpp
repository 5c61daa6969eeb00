// connection: trampolines, safe points and transitions for one sqlite3*.
#include "hotswap/db/connection.hpp"

#include "sql_name.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace hotswap::db {

// One function as registered with SQLite. Its address is the user data of the
// registration, so it lives as long as the registration.
struct connection::registered_fn {
  attachment* owner = nullptr;
  std::string name;
  int arity = 0;
  std::uint32_t kind = 0;
  std::uint32_t flags = 0;
  /// The function of the version the connection runs; null when that version
  /// does not have it in this shape (then `unavailable` says why).
  const hotswap_db_function* current = nullptr;
  std::string unavailable;
  bool pending = false;  ///< needs re-registration (or removal, if current is null) when idle
  /// Non-empty: an index using this function was built by another build; every call fails with this.
  std::string refusal;
  /// sha256 of the builds the database records for the indexes using this function.
  std::vector<std::string> built_by;
  // The call path's copies of current's entry point and the connection's
  // state: a row costs one load each (kept in step by bind()).
  hotswap_db_scalar_fn scalar = nullptr;
  hotswap_db_step_fn step = nullptr;
  hotswap_db_final_fn final = nullptr;
  void* state = nullptr;

  void bind() noexcept;
  const char* why_not_callable() const noexcept;
};

struct connection::attachment {
  std::string name;
  modules::module_ref<container_api> ref;
  modules::module_pin<container_api> pin;  // the version this connection runs
  void* conn_state = nullptr;
  bool started = false;               // conn_state came from a successful startup
  std::uint64_t refused_version = 0;  // a newer version whose startup failed here
  std::string last_error;
  std::vector<std::unique_ptr<registered_fn>> fns;
};

void connection::registered_fn::bind() noexcept {
  const hotswap_db_function* callable = refusal.empty() ? current : nullptr;
  state = owner != nullptr ? owner->conn_state : nullptr;
  scalar = callable != nullptr ? callable->scalar : nullptr;
  step = callable != nullptr ? callable->step : nullptr;
  final = callable != nullptr ? callable->final : nullptr;
}

const char* connection::registered_fn::why_not_callable() const noexcept {
  return refusal.empty() ? unavailable.c_str() : refusal.c_str();
}

namespace {

int sqlite_flags(std::uint32_t flags) {
  int out = SQLITE_UTF8;
  if ((flags & HOTSWAP_DB_DETERMINISTIC) != 0) out |= SQLITE_DETERMINISTIC;
  if ((flags & HOTSWAP_DB_DIRECTONLY) != 0) out |= SQLITE_DIRECTONLY;
  if ((flags & HOTSWAP_DB_INNOCUOUS) != 0) out |= SQLITE_INNOCUOUS;
  return out;
}

std::string label(const std::string& container, const modules::module_pin<container_api>& pin) {
  return container + " version " + std::to_string(pin.version().number) + " (" +
         pin.module().descriptor().build_version + ")";
}

// "" if the table is usable, else what is wrong with it.
std::string check_table(const container_api& api) {
  if (api.connection_startup == nullptr || api.connection_shutdown == nullptr)
    return "connection_startup and connection_shutdown are required";
  if (api.function_count != 0 && api.functions == nullptr) return "function_count is set but functions is null";
  for (std::uint32_t i = 0; i < api.function_count; ++i) {
    const hotswap_db_function& f = api.functions[i];
    const std::string which = "function #" + std::to_string(i) + (f.name ? std::string(" '") + f.name + "'" : "");
    if (f.name == nullptr || f.name[0] == '\0') return which + " has no name";
    if (f.arity < -1 || f.arity > 127) return which + " has arity " + std::to_string(f.arity);
    if ((f.flags & ~std::uint32_t{7}) != 0) return which + " has unknown flags";
    switch (f.kind) {
      case HOTSWAP_DB_SCALAR:
        if (f.scalar == nullptr) return which + " is a scalar without scalar()";
        break;
      case HOTSWAP_DB_PROCEDURE:
        if (f.scalar == nullptr) return which + " is a procedure without scalar()";
        if ((f.flags & HOTSWAP_DB_DETERMINISTIC) != 0) return which + " is a procedure marked deterministic";
        break;
      case HOTSWAP_DB_AGGREGATE:
        if (f.step == nullptr || f.final == nullptr) return which + " is an aggregate without step() and final()";
        break;
      default: return which + " has unknown kind " + std::to_string(f.kind);
    }
    for (std::uint32_t j = 0; j < i; ++j)
      if (api.functions[j].arity == f.arity && detail::same_sql_name(api.functions[j].name, f.name))
        return which + " is listed twice with arity " + std::to_string(f.arity);
  }
  return {};
}

// Runs a container hook that reports through hotswap_plugin_error; "" or why it failed.
template <class Call>
std::string guarded(Call&& call) noexcept {
  hotswap_plugin_error error{};
  int rc = 0;
  try {
    rc = call(&error);
  } catch (...) {
    return "an exception crossed the container ABI";
  }
  if (rc == 0) return {};
  error.message[HOTSWAP_PLUGIN_MESSAGE_MAX - 1] = '\0';
  std::string why = "[";
  why += std::to_string(error.code != 0 ? error.code : rc);
  why += "] ";
  why += error.message[0] != '\0' ? error.message : "no message";
  return why;
}

void shutdown_guarded(const modules::module_pin<container_api>& pin, sqlite3* db, void* state) noexcept {
  try {
    pin->connection_shutdown(pin.state(), db, state);
  } catch (...) {  // nothing to report it to but the container is leaving anyway
  }
}

std::string startup(const modules::module_pin<container_api>& pin, sqlite3* db, const hotswap_db_saved_state* saved,
                    void** state) {
  *state = nullptr;
  return guarded([&](hotswap_plugin_error* e) { return pin->connection_startup(pin.state(), db, saved, state, e); });
}

int append_bytes(void* context, const void* data, std::size_t size) {
  try {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), size);
    return 0;
  } catch (...) {
    return SQLITE_NOMEM;
  }
}

}  // namespace

const char* to_string(move_policy p) noexcept {
  switch (p) {
    case move_policy::next_statement: return "statement";
    case move_policy::next_transaction: return "transaction";
    case move_policy::never: return "never";
  }
  return "?";
}

move_policy parse_move_policy(const std::string& text) {
  if (text == "statement" || text == "next_statement") return move_policy::next_statement;
  if (text == "transaction" || text == "next_transaction") return move_policy::next_transaction;
  if (text == "never") return move_policy::never;
  throw std::invalid_argument("unknown move policy '" + text + "' (statement, transaction or never)");
}

connection::connection(container_host& host, sqlite3* db, move_policy policy)
    : host_(host), db_(db), policy_(policy), seen_generation_(host.generation()) {
  if (const char* file = sqlite3_db_filename(db, "main"); file != nullptr) database_ = file;
  host_.add_database(database_);
  sqlite3_trace_v2(db_, SQLITE_TRACE_STMT, &connection::on_trace, this);
  sqlite3_set_authorizer(db_, &connection::on_authorize, this);
}

connection::~connection() {
  if (!closing_) {
    sqlite3_trace_v2(db_, 0, nullptr, nullptr);
    sqlite3_set_authorizer(db_, nullptr, nullptr);
  }
  for (auto& a : attachments_) {
    unregister_all(*a);
    if (a->started) shutdown_guarded(a->pin, db_, a->conn_state);
    host_.connection_detached(a->name);
  }
  host_.remove_database(database_);
  sqlite3_close(records_);
}

void connection::attach(const std::string& container) {
  for (const auto& a : attachments_)
    if (a->name == container) return;
  auto a = std::make_unique<attachment>(attachment{container, host_.container(container), {}, nullptr, false, 0, {}, {}});
  a->pin = a->ref.pin();
  if (std::string bad = check_table(*a->pin); !bad.empty())
    throw db_error(db_errc::bad_function_table, label(container, a->pin) + ": bad function table: " + bad);
  for (std::uint32_t i = 0; i < a->pin->function_count; ++i)
    for (const auto& other : attachments_)
      for (const auto& f : other->fns)
        if (f->arity == a->pin->functions[i].arity && detail::same_sql_name(f->name, a->pin->functions[i].name))
          throw db_error(db_errc::name_conflict, container + ": function " + f->name + "/" +
                                                     std::to_string(f->arity) + " is already exported by " +
                                                     other->name + " on this connection");
  if (std::string why = startup(a->pin, db_, nullptr, &a->conn_state); !why.empty())
    throw db_error(db_errc::connection_startup, label(container, a->pin) + ": connection startup failed: " + why);
  a->started = true;
  adopt_functions(*a);
  for (const auto& f : a->fns)
    if (f->pending) {
      const std::string why = container + ": " + f->unavailable;
      unregister_all(*a);
      shutdown_guarded(a->pin, db_, a->conn_state);
      throw db_error(db_errc::sqlite, why);
    }
  attachments_.push_back(std::move(a));
  host_.connection_attached(container);
  refresh_guards(true);
}

// ---- the call path ------------------------------------------------------------

// The trampolines' common tail: run the container's entry point, turn a
// failure or an escaped exception into an SQL error on this statement.
template <class Call>
void connection::guarded_call(sqlite3_context* ctx, const registered_fn& f, Call&& call) {
  hotswap_plugin_error error;  // written only by a failing function
  error.code = 0;
  error.message[0] = '\0';
  int rc;
  try {
    rc = call(&error);
  } catch (...) {
    rc = HOTSWAP_PLUGIN_EXCEPTION;
    std::strcpy(error.message, "an exception crossed the container ABI");
  }
  if (rc != 0) report(ctx, f, rc, error);
}

void connection::scalar_trampoline(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  const auto* f = static_cast<const registered_fn*>(sqlite3_user_data(ctx));
  if (const auto call = f->scalar; call != nullptr)
    guarded_call(ctx, *f, [&](hotswap_plugin_error* e) { return call(f->state, ctx, argc, argv, e); });
  else
    sqlite3_result_error(ctx, f->why_not_callable(), -1);
}

void connection::step_trampoline(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  const auto* f = static_cast<const registered_fn*>(sqlite3_user_data(ctx));
  if (const auto call = f->step; call != nullptr)
    guarded_call(ctx, *f, [&](hotswap_plugin_error* e) { return call(f->state, ctx, argc, argv, e); });
  else
    sqlite3_result_error(ctx, f->why_not_callable(), -1);
}

void connection::final_trampoline(sqlite3_context* ctx) {
  const auto* f = static_cast<const registered_fn*>(sqlite3_user_data(ctx));
  if (const auto call = f->final; call != nullptr)
    guarded_call(ctx, *f, [&](hotswap_plugin_error* e) { return call(f->state, ctx, e); });
  else
    sqlite3_result_error(ctx, f->why_not_callable(), -1);
}

void connection::report(sqlite3_context* ctx, const registered_fn& f, int rc, hotswap_plugin_error& error) {
  error.message[HOTSWAP_PLUGIN_MESSAGE_MAX - 1] = '\0';
  char text[HOTSWAP_PLUGIN_MESSAGE_MAX + 160];
  std::snprintf(text, sizeof text, "%s() in %s version %llu: [%d] %s", f.name.c_str(), f.owner->name.c_str(),
                static_cast<unsigned long long>(f.owner->pin.version().number), error.code != 0 ? error.code : rc,
                error.message[0] != '\0' ? error.message : "no message");
  sqlite3_result_error(ctx, text, -1);
}

// ---- safe points --------------------------------------------------------------

int connection::on_trace(unsigned type, void* self, void* stmt, void* sql) {
  if (type != SQLITE_TRACE_STMT) return 0;
  // A trigger's program reports "-- TRIGGER name" while its statement runs: not a start.
  const char* text = static_cast<const char*>(sql);
  if (text != nullptr && text[0] == '-' && text[1] == '-') return 0;
  try {
    static_cast<connection*>(self)->at_statement_start(static_cast<sqlite3_stmt*>(stmt));
  } catch (...) {  // out of memory while moving: stay, try again at the next statement
  }
  return 0;
}

bool connection::statement_active(sqlite3_stmt* except) const {
  for (sqlite3_stmt* s = sqlite3_next_stmt(db_, nullptr); s != nullptr; s = sqlite3_next_stmt(db_, s))
    if (s != except && sqlite3_stmt_busy(s)) return true;
  return false;
}

void connection::at_statement_start(sqlite3_stmt* stmt) {
  const std::uint64_t g = host_.generation();
  if (g != seen_generation_) move_if_allowed(stmt, g);  // the whole cost of change detection on the call path
  if (recheck_at_start_) interrupt_if_refused();
}

void connection::move_if_allowed(sqlite3_stmt* starting, std::uint64_t generation) {
  const move_policy p = policy();
  if (p == move_policy::never) return;
  if (p == move_policy::next_transaction && sqlite3_get_autocommit(db_) == 0) return;  // inside a transaction
  if (statement_active(starting)) return;  // another statement is mid-way: it must finish on its version
  seen_generation_ = generation;
  for (auto& a : attachments_) move(*a);
}

// A statement naming a refused function was let through its prepare because
// the move due at its start would reach the recorded build. If the connection
// is still refused (the move failed), stop the statement. Best effort: SQLite
// checks for an interrupt between rows, so a lookup that finds nothing may
// still complete. Every statement start is checked until nothing is refused.
void connection::interrupt_if_refused() {
  for (const auto& a : attachments_)
    for (const auto& f : a->fns)
      if (!f->refusal.empty()) {
        a->last_error = f->refusal;
        sqlite3_interrupt(db_);
        return;
      }
  recheck_at_start_ = false;
}

bool connection::safe_point() {
  if (statement_active(nullptr)) return false;
  const std::uint64_t g = host_.generation();
  if (g != seen_generation_) move_if_allowed(nullptr, g);
  apply_pending();
  return true;
}

// Shutdown the old version, startup the new one; on failure, back to the old one.
void connection::move(attachment& a) {
  modules::module_pin<container_api> next = a.ref.pin();
  const std::uint64_t n = next.version().number;
  if (n == a.pin.version().number || n == a.refused_version) return;
  auto refuse = [&](const std::string& why) {
    a.refused_version = n;
    a.last_error = label(a.name, next) + ": " + why + "; this connection stays on " + label(a.name, a.pin);
    failed_startups_.fetch_add(1, std::memory_order_relaxed);  // a statistic: no partner
    host_.connection_moved(a.name, n, a.last_error);
  };
  if (std::string bad = check_table(*next); !bad.empty()) return refuse("bad function table: " + bad);

  std::string saved;
  if (a.pin->connection_save != nullptr) {
    const hotswap_db_buffer out{&saved, &append_bytes};
    if (std::string why = guarded([&](hotswap_plugin_error* e) {
          return a.pin->connection_save(a.pin.state(), db_, a.conn_state, &out, e);
        });
        !why.empty())
      return refuse("the old version could not save its connection state: " + why);
  }
  const std::string from_build = a.pin.module().descriptor().build_version;
  const hotswap_db_saved_state state{saved.data(), saved.size(), from_build.c_str()};
  const hotswap_db_saved_state* handed = a.pin->connection_save != nullptr ? &state : nullptr;

  if (a.started) shutdown_guarded(a.pin, db_, a.conn_state);
  a.started = false;
  a.conn_state = nullptr;
  void* fresh = nullptr;
  if (std::string why = startup(next, db_, handed, &fresh); !why.empty()) {
    refuse("connection startup failed: " + why);
    std::string again = startup(a.pin, db_, handed, &a.conn_state);
    a.started = again.empty();
    if (!a.started) {
      // Neither version will run here: every function of the container reports it.
      a.last_error += "; restarting it failed too: " + again;
      for (auto& f : a.fns) {
        f->current = nullptr;
        f->unavailable = a.last_error;
      }
    }
    for (auto& f : a.fns) f->bind();  // the restarted state, or nothing
    return;
  }
  a.pin = std::move(next);  // the old version may unload once no one else pins it
  a.conn_state = fresh;
  a.started = true;
  a.last_error.clear();
  moves_.fetch_add(1, std::memory_order_relaxed);  // a statistic: no partner
  adopt_functions(a);
  host_.connection_moved(a.name, n, {});
  refresh_guards(true);
}

// Points every registered trampoline at the pinned version's function and
// registers what is new; what changed shape or went away waits for an idle point.
void connection::adopt_functions(attachment& a) {
  const container_api& api = *a.pin;
  std::vector<bool> matched(api.function_count, false);
  for (auto& f : a.fns) {
    const hotswap_db_function* fn = nullptr;
    for (std::uint32_t i = 0; i < api.function_count && fn == nullptr; ++i)
      if (api.functions[i].arity == f->arity && detail::same_sql_name(api.functions[i].name, f->name)) {
        fn = &api.functions[i];
        matched[i] = true;
      }
    // Same kind: callable at once (with the registered flags until re-registered).
    f->current = fn != nullptr && fn->kind == f->kind ? fn : nullptr;
    f->pending = fn == nullptr || fn->kind != f->kind || fn->flags != f->flags;
    if (fn == nullptr) f->unavailable = f->name + "() is not in " + label(a.name, a.pin);
    else if (fn->kind != f->kind)
      f->unavailable = f->name + "() changed kind in " + label(a.name, a.pin) +
                       "; it is registered anew when the connection is next idle";
  }
  for (std::uint32_t i = 0; i < api.function_count; ++i) {
    if (matched[i]) continue;
    const hotswap_db_function& fn = api.functions[i];
    auto f = std::make_unique<registered_fn>();
    f->owner = &a;
    f->name = fn.name;
    f->arity = fn.arity;
    registered_fn& added = *f;
    a.fns.push_back(std::move(f));
    added.pending = !register_fn(added, &fn);
    if (added.pending) added.unavailable = added.name + "() could not be registered yet: " + sqlite3_errmsg(db_);
  }
  for (auto& f : a.fns) f->bind();
}

// Registers `fn`'s trampoline under f's name and arity, or removes it (fn null).
bool connection::register_fn(registered_fn& f, const hotswap_db_function* fn) {
  int rc;
  if (fn == nullptr) {
    rc = sqlite3_create_function_v2(db_, f.name.c_str(), f.arity, SQLITE_UTF8, nullptr, nullptr, nullptr, nullptr,
                                    nullptr);
  } else {
    const bool aggregate = fn->kind == HOTSWAP_DB_AGGREGATE;
    rc = sqlite3_create_function_v2(db_, f.name.c_str(), f.arity, sqlite_flags(fn->flags), &f,
                                    aggregate ? nullptr : &scalar_trampoline, aggregate ? &step_trampoline : nullptr,
                                    aggregate ? &final_trampoline : nullptr, nullptr);
  }
  if (rc == SQLITE_BUSY) busy_retries_.fetch_add(1, std::memory_order_relaxed);  // a statistic: no partner
  if (rc != SQLITE_OK) return false;
  registrations_.fetch_add(1, std::memory_order_relaxed);  // a statistic: no partner
  f.kind = fn != nullptr ? fn->kind : 0;
  f.flags = fn != nullptr ? fn->flags : 0;
  f.current = fn;
  f.bind();
  f.pending = false;
  f.unavailable.clear();
  return true;
}

// Re-registers changed functions and removes vanished ones; SQLITE_BUSY leaves them for the next idle point.
void connection::apply_pending() {
  for (auto& a : attachments_) {
    for (auto& f : a->fns) {
      if (!f->pending) continue;
      const hotswap_db_function* fn = nullptr;
      for (std::uint32_t i = 0; i < a->pin->function_count && fn == nullptr; ++i)
        if (a->pin->functions[i].arity == f->arity && detail::same_sql_name(a->pin->functions[i].name, f->name))
          fn = &a->pin->functions[i];
      register_fn(*f, fn);
    }
    std::erase_if(a->fns, [](const std::unique_ptr<registered_fn>& f) { return !f->pending && f->current == nullptr; });
  }
}

// Removes every function of `a` from SQLite; what cannot be removed (a
// statement is active) is left registered, inert, and deliberately leaked.
void connection::unregister_all(attachment& a) {
  for (auto& f : a.fns) {
    if (closing_ || register_fn(*f, nullptr)) continue;
    f->owner = nullptr;
    f->current = nullptr;
    f->bind();
    f->unavailable = "the hotswap connection was destroyed";
    static_cast<void>(f.release());
  }
  a.fns.clear();
}

// ---- indexes built by another build --------------------------------------------

// SQLite asks at every prepare, and again when a statement is prepared anew
// because the schema version changed (which a rebuild elsewhere causes).
int connection::on_authorize(void* self, int action, const char*, const char* function, const char*, const char*) {
  auto* c = static_cast<connection*>(self);
  unsigned data_version = 0;
  if (sqlite3_file_control(c->db_, "main", SQLITE_FCNTL_DATA_VERSION, &data_version) == SQLITE_OK &&
      data_version != c->seen_data_version_) {
    c->seen_data_version_ = data_version;
    c->refresh_guards(false);
  }
  if (action != SQLITE_FUNCTION || function == nullptr) return SQLITE_OK;
  // A read by the index does not call the function (SQLite looks the key up
  // in the index), so a statement naming it is refused when it is prepared.
  for (auto& a : c->attachments_)
    for (const auto& f : a->fns)
      if (!f->refusal.empty() && detail::same_sql_name(f->name, function)) {
        // A move is due at the statement's start and reaches the recorded
        // build: let it prepare, and check again there (at_statement_start).
        if (c->host_.generation() != c->seen_generation_ && c->policy() != move_policy::never) {
          const std::string serving = a->ref.pin().module().record().identity().sha256;
          if (std::all_of(f->built_by.begin(), f->built_by.end(), [&](const std::string& b) { return b == serving; })) {
            c->recheck_at_start_ = true;
            return SQLITE_OK;
          }
        }
        a->last_error = f->refusal;
        return SQLITE_DENY;
      }
  return SQLITE_OK;
}

// Reads which indexes use this connection's deterministic functions and which
// build the database records for each, through a read-only connection of its
// own (the authorizer may not run SQL on db_). Unless forced, only when the
// schema version changed. If the database cannot be read, the previous
// verdicts stay and the next prepare tries again.
void connection::refresh_guards(bool force) noexcept {
  std::vector<std::string> deterministic;
  for (const auto& a : attachments_)
    for (std::uint32_t i = 0; i < a->pin->function_count; ++i)
      if ((a->pin->functions[i].flags & HOTSWAP_DB_DETERMINISTIC) != 0) deterministic.emplace_back(a->pin->functions[i].name);
  if (database_.empty() || deterministic.empty() || !guard_indexes_) return;
  try {
    if (records_ == nullptr) {
      if (sqlite3_open_v2(database_.c_str(), &records_, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
        sqlite3_close(records_);
        records_ = nullptr;
        return;
      }
      sqlite3_busy_timeout(records_, 2000);
    }
    sqlite3_stmt* st = nullptr;
    sqlite3_int64 schema = -1;
    if (sqlite3_prepare_v2(records_, "PRAGMA schema_version", -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
      schema = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (schema < 0 || (!force && schema == seen_schema_version_)) return;
    const std::vector<schema_use> uses = find_schema_uses(records_, database_, deterministic);
    const std::map<std::string, index_build> builds = read_index_builds(records_);
    seen_schema_version_ = schema;
    for (auto& a : attachments_) {
      const modules::version_identity& mine = a->pin.module().record().identity();
      for (auto& f : a->fns) {
        f->refusal.clear();
        f->built_by.clear();
        for (const schema_use& u : uses) {
          const auto b = builds.find(u.name);
          if (u.type != "index" || !detail::same_sql_name(u.function, f->name) || b == builds.end()) continue;
          f->built_by.push_back(b->second.sha256);
          if (b->second.sha256 != mine.sha256 && f->refusal.empty())
            f->refusal = f->name + "(): index " + u.name + " on " + u.table + " in " + database_ + " was built by " +
                         b->second.describe() + ", this connection runs " + label(a->name, a->pin) + " (sha256 " +
                         mine.sha256.substr(0, 12) + "): it refuses to use the index until it moves to that build";
        }
        f->bind();
      }
    }
  } catch (...) {  // unreadable now (busy, out of memory): keep the previous verdicts
  }
}

// ---- status -------------------------------------------------------------------

std::uint64_t connection::version_of(const std::string& container) const {
  for (const auto& a : attachments_)
    if (a->name == container) return a->pin.version().number;
  return 0;
}

std::string connection::last_error(const std::string& container) const {
  for (const auto& a : attachments_)
    if (a->name == container) return a->last_error;
  return {};
}

std::size_t connection::pending_registrations() const noexcept {
  std::size_t n = 0;
  for (const auto& a : attachments_)
    n += static_cast<std::size_t>(std::count_if(a->fns.begin(), a->fns.end(), [](const auto& f) { return f->pending; }));
  return n;
}

connection_counters connection::counters() const noexcept {
  // Relaxed: statistics, a snapshot; no partner.
  return {moves_.load(std::memory_order_relaxed), failed_startups_.load(std::memory_order_relaxed),
          registrations_.load(std::memory_order_relaxed), busy_retries_.load(std::memory_order_relaxed)};
}

}  // namespace hotswap::db
