// session: per-backend container sessions, moves at transition points, the dispatcher.
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "module_host.hpp"
#include "session.hpp"
#include "shared_state.hpp"

extern "C" {
#include "access/xact.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/elog.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
}

namespace hotswap::pg {

settings gucs;

namespace {

struct container_session {
  std::string name;
  int shared_index = -1;
  container_pin pin;          // the version this session runs
  std::string build;
  std::uint64_t version = 0;  // its cluster-wide number
  std::uint64_t refused = 0;  // the newest version whose startup failed here
};

// One SQL function declared with hotswap.define(): what fn_extra points to.
struct binding {
  container_session* container = nullptr;
  std::string entry;
  hotswap_pg_fn code = nullptr;
  std::uint64_t epoch = 0;  // the session epoch `code` was resolved in
};

struct backend_state {
  std::unique_ptr<module_host> modules;
  std::vector<std::unique_ptr<container_session>> containers;
  std::unordered_map<Oid, std::unique_ptr<binding>> bindings;
  std::uint64_t epoch = 1;  // bumped by every move: bindings resolve again
  std::uint64_t seen_generation = 0;
  LocalTransactionId seen_transaction = InvalidLocalTransactionId;
  TimestampTz seen_statement = 0;
};

backend_state* state = nullptr;

// ---- running container hooks -----------------------------------------------------------

using hook_fn = int (*)(void* context, hotswap_plugin_error* error);

int call_guarded(hook_fn f, void* context, hotswap_plugin_error* error) {
  try {
    return f(context, error);
  } catch (const std::exception& e) {
    return hotswap_plugin_fail(error, HOTSWAP_PLUGIN_EXCEPTION, e.what());
  } catch (...) {
    return hotswap_plugin_fail(error, HOTSWAP_PLUGIN_EXCEPTION, "unknown exception");
  }
}

// Runs a hook in an internal subtransaction (outside a transaction: as is). A non-zero
// return or an ERROR it raises gives false and the cause in `why` (error data copied, the
// subtransaction rolled back, so the surrounding transaction goes on). No C++ object with a
// destructor lives in this frame across PG_TRY: a longjmp would skip it.
bool run_hook(hook_fn f, void* context, char* why, std::size_t why_size) {
  const bool in_transaction = IsTransactionState();
  MemoryContext caller_context = CurrentMemoryContext;
  ResourceOwner caller_owner = CurrentResourceOwner;
  hotswap_plugin_error error{};
  volatile int rc = 0;
  volatile bool raised = false;
  if (in_transaction) {
    BeginInternalSubTransaction(nullptr);
    MemoryContextSwitchTo(caller_context);
  }
  PG_TRY();
  {
    rc = call_guarded(f, context, &error);
    if (in_transaction) {
      ReleaseCurrentSubTransaction();
      MemoryContextSwitchTo(caller_context);
      CurrentResourceOwner = caller_owner;
    }
  }
  PG_CATCH();
  {
    MemoryContextSwitchTo(caller_context);
    ErrorData* data = CopyErrorData();
    FlushErrorState();
    if (in_transaction) {
      RollbackAndReleaseCurrentSubTransaction();
      MemoryContextSwitchTo(caller_context);
      CurrentResourceOwner = caller_owner;
    }
    snprintf(why, why_size, "ERROR %s: %s", unpack_sql_state(data->sqlerrcode), data->message);
    FreeErrorData(data);
    raised = true;
  }
  PG_END_TRY();
  if (raised) return false;
  if (rc != 0) snprintf(why, why_size, "[%d] %s", static_cast<int>(rc), error.message);
  return rc == 0;
}

struct startup_call {
  const hotswap_pg_container_api* api;
  const hotswap_pg_saved_state* saved;
};
int startup_hook(void* context, hotswap_plugin_error* error) {
  auto* c = static_cast<startup_call*>(context);
  return c->api->session_startup != nullptr ? c->api->session_startup(c->saved, error) : 0;
}
int shutdown_hook(void* context, hotswap_plugin_error*) {
  auto* api = static_cast<const hotswap_pg_container_api*>(context);
  if (api->session_shutdown != nullptr) api->session_shutdown();
  return 0;
}
struct save_call {
  const hotswap_pg_container_api* api;
  std::string* out;
};
int append_saved(void* context, const void* data, std::size_t size) {
  try {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), size);
    return 0;
  } catch (...) {
    return 1;
  }
}
int save_hook(void* context, hotswap_plugin_error* error) {
  auto* c = static_cast<save_call*>(context);
  if (c->api->session_save == nullptr) return 0;
  const hotswap_pg_buffer buffer{c->out, &append_saved};
  return c->api->session_save(&buffer, error);
}

// ---- loading and moving ----------------------------------------------------------------

constexpr std::size_t message_size = 1024;

// Loads the published version in this backend; false with the cause in `why`.
bool load_published(const shared::container_entry& e, loaded_version* out, char* why, const char** sqlstate) {
  try {
    // Only the bytes the swap published: the loader refuses others before they run.
    *out = host().load(GetUserNameFromId(GetUserId(), false), e.name, e.file, e.sha256);
    return true;
  } catch (const modules::module_error& x) {
    snprintf(why, message_size, "%s%s", x.code() == modules::module_errc::hash_mismatch ? "the file changed since the swap: " : "",
             x.what());
    *sqlstate = sqlstate_of(x.code());
  } catch (const std::exception& x) {
    strlcpy(why, x.what(), message_size);
    *sqlstate = "58000";
  }
  return false;
}

// Starts `next` with `saved` (maybe none); false with the cause.
bool start(const container_pin& next, const std::string* saved, const std::string& from_build, char* why) {
  hotswap_pg_saved_state bytes{saved != nullptr ? saved->data() : nullptr, saved != nullptr ? saved->size() : 0,
                               from_build.c_str()};
  startup_call call{&*next, saved != nullptr ? &bytes : nullptr};
  return run_hook(&startup_hook, &call, why, message_size);
}

void warn_refused(const container_session& c, std::uint64_t version, const char* why) {
  ereport(WARNING, (errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
                    errmsg("hotswap: container \"%s\": this session stays on version %llu, version %llu refused: %s",
                           c.name.c_str(), static_cast<unsigned long long>(c.version),
                           static_cast<unsigned long long>(version), why)));
}

void move(container_session& c, const shared::container_entry& e) {
  char why[message_size] = "";
  const char* sqlstate = nullptr;
  loaded_version next;
  if (!load_published(e, &next, why, &sqlstate)) {
    c.refused = e.version;
    shared::backend_record(c.shared_index, c.version, c.refused);
    warn_refused(c, e.version, why);
    return;
  }
  std::string saved;
  save_call save{&*c.pin, &saved};
  if (!run_hook(&save_hook, &save, why, message_size)) {
    host().release(next.pin);
    c.refused = e.version;
    shared::backend_record(c.shared_index, c.version, c.refused);
    warn_refused(c, e.version, (std::string("session_save of the old version failed: ") + why).c_str());
    return;
  }
  run_hook(&shutdown_hook, const_cast<hotswap_pg_container_api*>(&*c.pin), why, message_size);
  if (start(next.pin, &saved, c.build, why)) {
    container_pin old = std::move(c.pin);
    host().release(old);
    c.pin = std::move(next.pin);
    c.build = next.build;
    c.version = e.version;
    ++state->epoch;
    shared::backend_record(c.shared_index, c.version, c.refused);
    return;
  }
  const std::string cause = std::string("session_startup failed: ") + why;
  host().release(next.pin);
  c.refused = e.version;
  if (!start(c.pin, &saved, c.build, why))
    ereport(WARNING, (errmsg("hotswap: container \"%s\": the old version %llu did not start again either: %s",
                             c.name.c_str(), static_cast<unsigned long long>(c.version), why)));
  shared::backend_record(c.shared_index, c.version, c.refused);
  warn_refused(c, e.version, cause.c_str());
}

bool at_transition_point() {
  if (MyProc->lxid != state->seen_transaction) return true;
  return gucs.transition == static_cast<int>(transition_mode::statement) &&
         GetCurrentStatementStartTimestamp() != state->seen_statement;
}

// Out of line and cold, as are bind() and resolve(), while call_container() is inlined: the
// dispatch then saves two registers instead of six (callgrind, scripts/bench_pg.sh: 46 instructions
// per call more than a plain C function before, 39 after).
[[gnu::noinline, gnu::cold]] void transition_point() {
  state->seen_transaction = MyProc->lxid;
  state->seen_statement = GetCurrentStatementStartTimestamp();
  if (gucs.transition == static_cast<int>(transition_mode::never)) return;
  const std::uint64_t g = shared::generation();
  if (g == state->seen_generation) return;
  if (IsInParallelMode() || !IsTransactionState()) return;  // no subtransaction possible: next time
  state->seen_generation = g;
  for (const std::unique_ptr<container_session>& c : state->containers) {
    shared::container_entry e;
    if (!shared::find(c->shared_index, &e) || e.version == c->version || e.version == c->refused) continue;
    move(*c, e);
  }
  log_audit_lines();
}

// ---- attaching: the first use of a container, the first call of a function ------------

void at_backend_exit(int, Datum) {
  if (state == nullptr) return;
  char why[message_size];
  for (const std::unique_ptr<container_session>& c : state->containers)
    if (c->pin) {
      run_hook(&shutdown_hook, const_cast<hotswap_pg_container_api*>(&*c->pin), why, message_size);
      host().release(c->pin);
    }
  shared::backend_detach();
  // Joins the kernel's threads (unload workers, reclaimer) before exit() runs static destructors.
  state->modules.reset();
}

backend_state& ensure_state() {
  if (state == nullptr) {
    state = new backend_state;  // lives as long as the backend
    shared::backend_attach();
    before_shmem_exit(at_backend_exit, 0);
    state->seen_generation = shared::generation();
  }
  return *state;
}

[[noreturn]] void raise(const char* sqlstate, const char* message) {
  ereport(ERROR, (errcode(MAKE_SQLSTATE(sqlstate[0], sqlstate[1], sqlstate[2], sqlstate[3], sqlstate[4])),
                  errmsg("hotswap: %s", message)));
  pg_unreachable();
}

container_session& attach(const char* name) {
  for (const std::unique_ptr<container_session>& c : ensure_state().containers)
    if (c->name == name) return *c;
  char why[message_size] = "";
  const char* sqlstate = "42704";  // undefined_object
  shared::container_entry e;
  container_session* c = nullptr;
  if (!shared::find(std::string(name), &e)) {
    snprintf(why, sizeof why, "container \"%s\" is not loaded (SELECT hotswap.swap('%s', 'file.so'))", name, name);
  } else {
    loaded_version first;
    if (load_published(e, &first, why, &sqlstate)) {
      sqlstate = "38000";
      if (start(first.pin, nullptr, first.build, why)) {
        auto s = std::make_unique<container_session>();
        s->name = name;
        s->shared_index = e.index;
        s->pin = std::move(first.pin);
        s->build = first.build;
        s->version = e.version;
        c = s.get();
        state->containers.push_back(std::move(s));
        shared::backend_record(c->shared_index, c->version, 0);
      } else {
        host().release(first.pin);
      }
    }
  }
  log_audit_lines();
  if (c == nullptr) raise(sqlstate, why);
  return *c;
}

// hotswap.functions row of `fn` into the two buffers; false if none.
bool lookup_definition(Oid fn, char* container, char* entry) {
  if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "hotswap: SPI_connect failed");
  Oid types[1] = {OIDOID};
  Datum values[1] = {ObjectIdGetDatum(fn)};
  const int rc = SPI_execute_with_args("SELECT container, entry FROM hotswap.functions WHERE fn::oid = $1", 1, types,
                                       values, nullptr, true, 1);
  const bool found = rc == SPI_OK_SELECT && SPI_processed == 1;
  if (found) {
    strlcpy(container, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), shared::name_size);
    strlcpy(entry, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2), NAMEDATALEN);
  }
  SPI_finish();
  return found;
}

[[gnu::noinline, gnu::cold]] binding* bind(FunctionCallInfo fcinfo) {
  const Oid fn = fcinfo->flinfo->fn_oid;
  auto it = ensure_state().bindings.find(fn);
  if (it == state->bindings.end()) {
    char container[shared::name_size], entry[NAMEDATALEN];
    if (!lookup_definition(fn, container, entry))
      ereport(ERROR, (errcode(ERRCODE_UNDEFINED_FUNCTION),
                      errmsg("hotswap: function %u is bound to hotswap_dispatch but not defined in hotswap.functions "
                             "(declare it with hotswap.define)",
                             fn)));
    container_session& c = attach(container);
    auto b = std::make_unique<binding>();
    b->container = &c;
    b->entry = entry;
    it = state->bindings.emplace(fn, std::move(b)).first;
  }
  fcinfo->flinfo->fn_extra = it->second.get();
  return it->second.get();
}

[[gnu::noinline, gnu::cold]] void resolve(binding& b) {
  const hotswap_pg_container_api& api = *b.container->pin;
  b.code = nullptr;
  for (std::uint32_t i = 0; i < api.function_count; ++i)
    if (b.entry == api.functions[i].name) b.code = api.functions[i].fn;
  b.epoch = state->epoch;
  if (b.code == nullptr)
    ereport(ERROR, (errcode(ERRCODE_UNDEFINED_FUNCTION),
                    errmsg("hotswap: container \"%s\" version %llu (build %s) has no function \"%s\"",
                           b.container->name.c_str(), static_cast<unsigned long long>(b.container->version),
                           b.container->build.c_str(), b.entry.c_str())));
}

void container_context(void* arg) {
  const binding* b = static_cast<const binding*>(arg);
  errcontext("hotswap container \"%s\" version %llu (build %s), function \"%s\"", b->container->name.c_str(),
             static_cast<unsigned long long>(b->container->version), b->container->build.c_str(), b->entry.c_str());
}

// A C++ exception escaping a container becomes an ERROR (raised outside the handler: a
// longjmp out of a catch block would leave the exception allocated and caught forever).
[[gnu::always_inline]] inline Datum call_container(const binding* b, FunctionCallInfo fcinfo) {
  char message[HOTSWAP_PLUGIN_MESSAGE_MAX];
  try {
    return b->code(fcinfo);
  } catch (const std::exception& e) {
    strlcpy(message, e.what(), sizeof message);
  } catch (...) {
    strlcpy(message, "unknown exception", sizeof message);
  }
  ereport(ERROR, (errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION), errmsg("hotswap: C++ exception: %s", message)));
  pg_unreachable();
}

}  // namespace

host_settings current_host_settings() {
  if (gucs.container_dir == nullptr || gucs.container_dir[0] == '\0')
    throw std::invalid_argument("hotswap.container_dir is not set (postgresql.conf; the only directory containers load from)");
  host_settings s;
  s.container_dir = gucs.container_dir;
  s.shadow = static_cast<modules::shadow_mode>(gucs.shadow);
  return s;
}

module_host& host() {
  backend_state& s = ensure_state();
  if (!s.modules) s.modules = module_host::create(current_host_settings());
  return *s.modules;
}

void on_statement_start() {
  if (state != nullptr && !state->containers.empty() && at_transition_point()) transition_point();
}

void log_audit_lines() {
  if (state == nullptr || !state->modules) return;
  for (const std::string& line : state->modules->take_audit_lines())
    ereport(DEBUG1, (errmsg("hotswap: backend loader: %s", line.c_str())));
}

}  // namespace hotswap::pg

extern "C" {

PG_FUNCTION_INFO_V1(hotswap_dispatch);

// Every SQL function hotswap.define() declares is bound here. The dispatcher keeps no state
// across the container call: a container's ERROR (a longjmp through this frame) leaves
// nothing to restore, and PostgreSQL unlinks the error context entry itself.
Datum hotswap_dispatch(PG_FUNCTION_ARGS) {
  using namespace hotswap::pg;
  auto* b = static_cast<binding*>(fcinfo->flinfo->fn_extra);
  if (unlikely(b == nullptr)) b = bind(fcinfo);
  if (unlikely(at_transition_point())) transition_point();
  if (unlikely(b->epoch != state->epoch)) resolve(*b);
  ErrorContextCallback context{error_context_stack, &container_context, b};
  error_context_stack = &context;
  const Datum result = call_container(b, fcinfo);
  error_context_stack = context.previous;
  return result;
}

}  // extern "C"
