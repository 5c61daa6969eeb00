// hotswap_pg: the extension's entry points. Settings, shared memory, the
// statement-start hook, and the SQL functions hotswap.swap(),
// hotswap.backend_versions() and hotswap.container_versions().
#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "module_host.hpp"
#include "preflight.hpp"
#include "session.hpp"
#include "shared_state.hpp"

extern "C" {
#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_authid.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

PG_MODULE_MAGIC;

void _PG_init(void);
PG_FUNCTION_INFO_V1(hotswap_swap);
PG_FUNCTION_INFO_V1(hotswap_backend_versions);
PG_FUNCTION_INFO_V1(hotswap_container_versions);
}

namespace hotswap::pg {
namespace {

shmem_request_hook_type previous_shmem_request = nullptr;
shmem_startup_hook_type previous_shmem_startup = nullptr;
ExecutorStart_hook_type previous_executor_start = nullptr;

const struct config_enum_entry transition_options[] = {
    {"transaction", static_cast<int>(transition_mode::transaction), false},
    {"statement", static_cast<int>(transition_mode::statement), false},
    {"never", static_cast<int>(transition_mode::never), false},
    {nullptr, 0, false}};

const struct config_enum_entry shadow_options[] = {
    {"memory", static_cast<int>(modules::shadow_mode::memory), false},
    {"file", static_cast<int>(modules::shadow_mode::file), false},
    {"in_place", static_cast<int>(modules::shadow_mode::in_place), false},
    {nullptr, 0, false}};

void shmem_request() {
  if (previous_shmem_request != nullptr) previous_shmem_request();
  shared::request_memory();
}

void shmem_startup() {
  if (previous_shmem_startup != nullptr) previous_shmem_startup();
  shared::attach_memory();
}

void executor_start(QueryDesc* query, int eflags) {
  on_statement_start();
  if (previous_executor_start != nullptr)
    previous_executor_start(query, eflags);
  else
    standard_ExecutorStart(query, eflags);
}

void define_settings() {
  DefineCustomStringVariable("hotswap.container_dir", "The only directory hotswap.swap() loads containers from.",
                             "Owned by root or the server's account, not writable by group or others.",
                             &gucs.container_dir, "", PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
  DefineCustomEnumVariable("hotswap.shadow", "Where each backend's private copy of a container version lives.",
                           "memory: a sealed memfd (default); file: a private directory; in_place: the file itself.",
                           &gucs.shadow, gucs.shadow, shadow_options, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
  DefineCustomBoolVariable("hotswap.preflight", "Load a candidate in a forked copy of the swapping backend first.",
                           nullptr, &gucs.preflight, true, PGC_SUSET, 0, nullptr, nullptr, nullptr);
  DefineCustomBoolVariable("hotswap.preflight_remember",
                           "Skip the preflight for bytes (by SHA-256) that passed it in this backend before.", nullptr,
                           &gucs.preflight_remember, true, PGC_SUSET, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("hotswap.preflight_timeout", "How long the preflight may take.", nullptr,
                          &gucs.preflight_timeout_ms, 10000, 100, 600000, PGC_SUSET, GUC_UNIT_MS, nullptr, nullptr,
                          nullptr);
  DefineCustomEnumVariable("hotswap.transition", "When this session moves to a swapped container version.",
                           "transaction (at its next transaction start), statement (next statement) or never.",
                           &gucs.transition, gucs.transition, transition_options, PGC_USERSET, 0, nullptr, nullptr,
                           nullptr);
  MarkGUCPrefixReserved("hotswap");
}

// The forked preflight child: it must never run the backend's exit callbacks (they would
// release the parent's PGPROC and shared memory state).
void detach_from_backend() { on_exit_reset(); }

// SHA-256s whose preflight passed in this backend, newest last (the kernel's preflight_memo,
// for the fork preflight): swapping back and forth between known builds forks no child.
// Refusals are not remembered.
std::vector<std::string> preflight_passes;
constexpr std::size_t remembered_passes = 64;

void remember_pass(const std::string& sha256) {
  if (preflight_passes.size() == remembered_passes) preflight_passes.erase(preflight_passes.begin());
  preflight_passes.push_back(sha256);
}

bool passed_before(const std::string& sha256) {
  return std::find(preflight_passes.begin(), preflight_passes.end(), sha256) != preflight_passes.end();
}

// The swap's result row: version, moved, refused, pending.
struct swap_result_row {
  std::uint64_t version = 0;
  shared::swap_counts counts;
};

void audit(const char* role, const char* container, const char* file, const char* outcome) {
  ereport(LOG, (errmsg("hotswap: audit: role=\"%s\" container=\"%s\" file=\"%s\" %s", role, container, file, outcome),
                errhidestmt(true)));
}

// Written as the bootstrap superuser: a role granted hotswap.swap() needs no privilege on the
// history table (and cannot write it otherwise). An ERROR here aborts the transaction, which
// restores the user id.
void record_history(const char* role, const shared::container_entry& e, double preflight_ms) {
  Oid caller = InvalidOid;
  int security_context = 0;
  GetUserIdAndSecContext(&caller, &security_context);
  SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID, security_context | SECURITY_LOCAL_USERID_CHANGE);
  if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "hotswap: SPI_connect failed");
  Oid types[7] = {NAMEOID, TEXTOID, INT8OID, TEXTOID, TEXTOID, TEXTOID, FLOAT8OID};
  Datum values[7] = {CStringGetDatum(role),
                     CStringGetTextDatum(e.name.c_str()),
                     Int64GetDatum(static_cast<int64>(e.version)),
                     CStringGetTextDatum(e.file.c_str()),
                     CStringGetTextDatum(e.sha256.c_str()),
                     CStringGetTextDatum(e.build.c_str()),
                     Float8GetDatum(preflight_ms)};
  char nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', preflight_ms < 0 ? 'n' : ' '};
  SPI_execute_with_args(
      "INSERT INTO hotswap.swap_history(role, container, version, file, sha256, build, preflight_ms) "
      "VALUES ($1, $2, $3, $4, $5, $6, $7)",
      7, types, values, nulls, false, 0);
  SPI_finish();
  SetUserIdAndSecContext(caller, security_context);
}

// Everything that may throw C++ exceptions, with no PostgreSQL error in between;
// false with `why` and `sqlstate` set.
bool check_and_publish(const char* role, const std::string& name, const std::string& requested,
                       shared::container_entry* published, double* preflight_ms, std::string* preflight,
                       std::string* why, std::string* sqlstate) {
  try {
    const host_settings settings = current_host_settings();
    std::filesystem::path file(requested);
    if (file.is_relative()) file = settings.container_dir / file;
    std::string sha256;
    if (gucs.preflight) {
      const std::string known = host().sha256_of(file);
      if (gucs.preflight_remember && passed_before(known)) {
        sha256 = known;
        *preflight = "remembered";
      } else {
        const preflight_outcome p = preflight_in_fork(settings, name, file,
                                                      std::chrono::milliseconds(gucs.preflight_timeout_ms),
                                                      &detach_from_backend);
        *preflight_ms = std::chrono::duration<double, std::milli>(p.took).count();
        *preflight = std::to_string(*preflight_ms) + " ms";
        if (!p.passed) {
          *why = "preflight refused " + file.string() + ": " + p.why;
          *sqlstate = p.sqlstate;
          return false;
        }
        sha256 = p.sha256;
        remember_pass(sha256);
      }
    }
    // Loaded here too, with every check, so a file that cannot serve is an ERROR on this
    // call and nothing is published; only the bytes the preflight passed (a file rewritten
    // since is refused before its code runs). This backend moves at its own next transition point.
    loaded_version v = host().load(role, name, file, sha256);
    host().release(v.pin);
    *published = shared::publish(name, file.string(), v.sha256, v.build);
    return true;
  } catch (const modules::module_error& e) {
    *why = e.what();
    *sqlstate = sqlstate_of(e.code());
  } catch (const std::exception& e) {
    *why = e.what();
    *sqlstate = "22023";
  }
  return false;
}

}  // namespace
}  // namespace hotswap::pg

extern "C" {

void _PG_init(void) {
  using namespace hotswap::pg;
  if (!process_shared_preload_libraries_in_progress)
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("hotswap_pg must be loaded via shared_preload_libraries"),
                    errhint("Add hotswap_pg to shared_preload_libraries in postgresql.conf and restart the server.")));
  define_settings();
  previous_shmem_request = shmem_request_hook;
  shmem_request_hook = shmem_request;
  previous_shmem_startup = shmem_startup_hook;
  shmem_startup_hook = shmem_startup;
  previous_executor_start = ExecutorStart_hook;
  ExecutorStart_hook = executor_start;
}

// hotswap.swap(container text, file text, wait_ms int default 0)
//   -> (version bigint, moved int, refused int, pending int)
Datum hotswap_swap(PG_FUNCTION_ARGS) {
  using namespace hotswap::pg;
  char* name = text_to_cstring(PG_GETARG_TEXT_PP(0));
  char* requested = text_to_cstring(PG_GETARG_TEXT_PP(1));
  const int wait_ms = PG_ARGISNULL(2) ? 0 : PG_GETARG_INT32(2);
  const char* role = GetUserNameFromId(GetUserId(), false);
  if (name[0] == '\0' || strlen(name) >= shared::name_size)
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                    errmsg("hotswap: a container name has 1 to %d bytes", static_cast<int>(shared::name_size - 1))));

  // The history row is written after the publish: refuse up front where it could not be
  // (a standby has no history table writes: there the audit line is the record).
  const bool in_recovery = RecoveryInProgress();
  if (XactReadOnly && !in_recovery)
    ereport(ERROR, (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
                    errmsg("hotswap: hotswap.swap() records the swap in hotswap.swap_history: not in a read-only "
                           "transaction")));

  char* why_copy = nullptr;
  char sqlstate[6] = "";
  shared::container_entry e;
  double preflight_ms = -1;
  char* preflight_copy = nullptr;
  {
    std::string why, code, preflight = "off";
    if (!check_and_publish(role, name, requested, &e, &preflight_ms, &preflight, &why, &code)) {
      why_copy = pstrdup(why.c_str());
      strlcpy(sqlstate, code.c_str(), sizeof sqlstate);
    }
    preflight_copy = pstrdup(preflight.c_str());
  }
  log_audit_lines();
  if (why_copy != nullptr) {
    audit(role, name, requested, psprintf("refused: %s", why_copy));
    ereport(ERROR, (errcode(MAKE_SQLSTATE(sqlstate[0], sqlstate[1], sqlstate[2], sqlstate[3], sqlstate[4])),
                    errmsg("hotswap: swap of \"%s\" refused: %s", name, why_copy)));
  }
  audit(role, name, e.file.c_str(),
        psprintf("swapped: version=%llu build=\"%s\" sha256=%s preflight=%s", static_cast<unsigned long long>(e.version),
                 e.build.c_str(), e.sha256.c_str(), preflight_copy));
  if (!in_recovery) record_history(role, e, preflight_ms);

  // Other backends move at their own transition points; wait for them up to wait_ms.
  swap_result_row row{e.version, shared::count(e.index, e.version)};
  const TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_ms);
  while (row.counts.pending > 0 && GetCurrentTimestamp() < until) {
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10, PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
    row.counts = shared::count(e.index, e.version);
  }

  TupleDesc desc;
  if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE) elog(ERROR, "hotswap.swap: wrong result type");
  desc = BlessTupleDesc(desc);
  Datum values[4] = {Int64GetDatum(static_cast<int64>(row.version)), Int32GetDatum(row.counts.moved),
                     Int32GetDatum(row.counts.refused), Int32GetDatum(row.counts.pending)};
  bool nulls[4] = {false, false, false, false};
  PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

// hotswap.backend_versions() -> (pid, container, version, refused, since): the hotswap.versions view.
Datum hotswap_backend_versions(PG_FUNCTION_ARGS) {
  using namespace hotswap::pg;
  InitMaterializedSRF(fcinfo, 0);
  auto* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
  for (const shared::backend_version& v : shared::versions()) {
    Datum values[5] = {Int32GetDatum(v.pid), CStringGetTextDatum(v.container.c_str()),
                       Int64GetDatum(static_cast<int64>(v.version)), Int64GetDatum(static_cast<int64>(v.refused)),
                       TimestampTzGetDatum(v.since)};
    bool nulls[5] = {false, false, false, v.refused == 0, false};
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
  }
  return static_cast<Datum>(0);
}

// hotswap.container_versions() -> (container, version, file, sha256, build, since)
Datum hotswap_container_versions(PG_FUNCTION_ARGS) {
  using namespace hotswap::pg;
  InitMaterializedSRF(fcinfo, 0);
  auto* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
  for (const shared::container_entry& c : shared::containers()) {
    Datum values[6] = {CStringGetTextDatum(c.name.c_str()), Int64GetDatum(static_cast<int64>(c.version)),
                       CStringGetTextDatum(c.file.c_str()), CStringGetTextDatum(c.sha256.c_str()),
                       CStringGetTextDatum(c.build.c_str()), TimestampTzGetDatum(c.since)};
    bool nulls[6] = {false, false, false, false, false, false};
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
  }
  return static_cast<Datum>(0);
}

}  // extern "C"
