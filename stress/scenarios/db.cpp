// The `db` end-to-end scenario: SQLite connections under load while their
// function container is swapped (adapters/db).
//
// Each worker thread owns a connection to one WAL database and alternates a
// 50-row query (container_version(), tag(n) on every row) with an INSERT whose
// trigger calls the audit() procedure. Case "steady" swaps nothing; case
// "swapping" swaps the container between three builds every --scenario-arg
// swap_ms (default 5). Reported: statements/s, per-statement latency
// percentiles, swaps/s, moves; and the invariants: every statement's rows from
// one version, every trigger on its INSERT's version, each connection's hooks
// alternating startup/shutdown on the same version, no statement finishing
// after its version was unloaded, every row and audit row present, and
// PRAGMA integrity_check = ok.
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include <hotswap/db/connection.hpp>

#include "host_scenario.hpp"

namespace hotswap::stress {

namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

struct statement_end {
  std::uint64_t slot_version;
  std::uint64_t stamp;
};

struct worker_result {
  std::vector<std::uint32_t> latency_ns;
  std::vector<statement_end> ends;
  std::uint64_t statements = 0, inserts = 0, moves = 0;
  std::string db;
  std::string failure;
};

std::string exec(sqlite3* db, const char* sql) {
  char* message = nullptr;
  std::string out;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &message) != SQLITE_OK) out = message ? message : sqlite3_errmsg(db);
  sqlite3_free(message);
  return out;
}

std::int64_t scalar(sqlite3* db, const char* sql) {
  sqlite3_stmt* st = nullptr;
  std::int64_t v = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

host_case run_case(const std::string& name, bool swapping, double seconds, int workers, int swap_ms) {
  host_case out;
  out.name = name;
  const fs::path dir = fs::temp_directory_path() / ("hotswap-stress-db-" + std::to_string(::getpid()) + "-" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);

  std::mutex log_mutex;
  std::atomic<std::uint64_t> clock{0};
  std::multimap<std::string, std::pair<std::string, int>> hooks;  // db -> (what, version), in order
  std::map<std::uint64_t, std::uint64_t> unloaded_at;              // slot version -> stamp
  db::host_options options;
  options.container_dir = HOTSWAP_DB_CONTAINER_DIR;
  options.shadow_dir = dir / "shadow";
  options.history = 4;
  options.log = [&](const modules::module_event& e) {
    std::lock_guard lock(log_mutex);
    if (e.kind == modules::module_event_kind::unloaded) unloaded_at[e.from_version] = clock.fetch_add(1);
    if (e.kind != modules::module_event_kind::plugin_log) return;
    std::istringstream in(e.message.substr(e.message.find(']') + 2));
    std::string what, conn;
    int version = 0;
    in >> what >> conn >> version;
    hooks.emplace(conn, std::make_pair(what, version));
  };
  std::vector<worker_result> results(static_cast<std::size_t>(workers));
  std::uint64_t swaps = 0;
  std::map<std::uint64_t, int> build_of;
  double elapsed = 0;
  {
    db::container_host host(options);
    const auto container = [](const char* n) { return fs::path(HOTSWAP_DB_CONTAINER_DIR) / (std::string(n) + ".so"); };
    host.load("ver", container("version_v1"));
    const fs::path file = dir / "stress.db";
    {
      sqlite3* db = nullptr;
      sqlite3_open(file.c_str(), &db);
      exec(db, "PRAGMA journal_mode=WAL");
      exec(db, "CREATE TABLE nums(n INTEGER); WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM c "
               "WHERE n < 50) INSERT INTO nums SELECT n FROM c; CREATE TABLE items(id INTEGER PRIMARY KEY, v INTEGER);"
               "CREATE TABLE audit_log(version INTEGER, x INTEGER);");
      sqlite3_close(db);
    }
    std::atomic<int> ready{0};
    std::atomic<bool> stop{false};
    auto worker = [&](worker_result& r, bool creates_trigger) {
      sqlite3* db = nullptr;
      try {
        sqlite3_open(file.c_str(), &db);
        sqlite3_busy_timeout(db, 10000);
        exec(db, "PRAGMA synchronous=NORMAL");  // WAL: no fsync per commit; durability is not what is measured
        char text[32];
        std::snprintf(text, sizeof text, "%p", static_cast<void*>(db));
        r.db = text;
        db::connection conn(host, db);
        conn.attach("ver");
        if (creates_trigger)
          if (auto e = exec(db, "CREATE TRIGGER IF NOT EXISTS a AFTER INSERT ON items BEGIN SELECT audit(NEW.id); END");
              !e.empty())
            throw std::runtime_error(e);
        ready.fetch_add(1);
        while (ready.load() < workers) std::this_thread::yield();
        sqlite3_stmt* scan = nullptr;
        sqlite3_stmt* insert = nullptr;
        sqlite3_prepare_v2(db, "SELECT container_version(), tag(n) FROM nums", -1, &scan, nullptr);
        sqlite3_prepare_v2(db, "INSERT INTO items(v) VALUES (container_version())", -1, &insert, nullptr);
        r.latency_ns.reserve(1 << 20);
        for (std::uint64_t i = 0; !stop.load(std::memory_order_relaxed) && r.statements < 50'000'000; ++i) {
          sqlite3_stmt* st = i % 2 == 0 ? scan : insert;
          const auto t0 = clock_type::now();
          int first = -1, rc;
          while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const int v = sqlite3_column_int(st, 0);
            if (first < 0) first = v;
            if (v != first || sqlite3_column_int64(st, 1) % 10 != v)
              throw std::runtime_error("one statement saw versions " + std::to_string(first) + " and " +
                                       std::to_string(v));
          }
          if (rc != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(db));
          sqlite3_reset(st);
          const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t0).count();
          if (r.latency_ns.size() < r.latency_ns.capacity())
            r.latency_ns.push_back(static_cast<std::uint32_t>(std::min<long long>(ns, UINT32_MAX)));
          r.ends.push_back({conn.version_of("ver"), clock.fetch_add(1)});
          ++r.statements;
          r.inserts += st == insert;
        }
        sqlite3_finalize(scan);
        sqlite3_finalize(insert);
        r.moves = conn.counters().moves;
      } catch (const std::exception& e) {
        r.failure = e.what();
        ready.fetch_add(workers);
        stop.store(true);
      }
      sqlite3_close(db);
    };
    std::vector<std::thread> threads;
    for (int w = 0; w < workers; ++w) threads.emplace_back(worker, std::ref(results[static_cast<std::size_t>(w)]), w == 0);
    while (ready.load() < workers) std::this_thread::yield();
    const auto start = clock_type::now();
    const auto end = start + std::chrono::duration<double>(seconds);
    const char* cycle[] = {"version_v2", "version_v3", "version_v1"};
    while (clock_type::now() < end && !stop.load()) {
      if (swapping) {
        try {
          host.swap("ver", container(cycle[swaps % 3]));
          ++swaps;
        } catch (const modules::module_error& e) {
          if (e.code() != modules::module_errc::backpressure) out.violations.push_back(std::string("swap failed: ") + e.what());
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(swapping ? swap_ms : 20));
    }
    stop.store(true);
    for (auto& t : threads) t.join();
    elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
    host.get_domain().barrier();
    const auto listed = host.list();
    for (const auto& v : listed.at(0).versions) build_of[v.number] = std::stoi(v.id.build_version);

    std::uint64_t inserts = 0, statements = 0, moves = 0, late = 0, bad_hooks = 0;
    std::vector<std::uint32_t> all;
    for (auto& r : results) {
      if (!r.failure.empty()) out.violations.push_back("worker failed: " + r.failure);
      inserts += r.inserts;
      statements += r.statements;
      moves += r.moves;
      all.insert(all.end(), r.latency_ns.begin(), r.latency_ns.end());
      std::lock_guard lock(log_mutex);
      for (const statement_end& e : r.ends)
        if (auto it = unloaded_at.find(e.slot_version); it != unloaded_at.end() && it->second < e.stamp) ++late;
      // startup, shutdown, startup, ... on the same version; one pair per move plus the first and last.
      auto [b, en] = hooks.equal_range(r.db);
      std::size_t i = 0;
      int last_version = 0;
      for (auto it = b; it != en; ++it, ++i) {
        const bool startup = it->second.first == "conn-startup";
        if (startup != (i % 2 == 0) || (!startup && it->second.second != last_version)) ++bad_hooks;
        last_version = it->second.second;
      }
      if (i != 2 * (r.moves + 1)) ++bad_hooks;
    }
    if (late != 0) out.violations.push_back(std::to_string(late) + " statements ended after their version unloaded");
    if (bad_hooks != 0) out.violations.push_back(std::to_string(bad_hooks) + " connection hook sequences out of order");
    sqlite3* db = nullptr;
    sqlite3_open(file.c_str(), &db);
    const auto items = scalar(db, "SELECT count(*) FROM items");
    const auto audited = scalar(db, "SELECT count(*) FROM items JOIN audit_log ON x = id WHERE version = v");
    sqlite3_stmt* st = nullptr;
    std::string integrity = "?";
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
      integrity = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    if (items != static_cast<std::int64_t>(inserts))
      out.violations.push_back(std::to_string(items) + " rows for " + std::to_string(inserts) + " inserts");
    if (audited != items)
      out.violations.push_back(std::to_string(audited) + " audit rows on their insert's version for " +
                               std::to_string(items) + " rows");
    if (integrity != "ok") out.violations.push_back("integrity_check: " + integrity);
    if (swapping && moves == 0) out.violations.push_back("no connection ever moved to a new version");

    out.metrics = {{"statements", static_cast<double>(statements)},
                   {"statements_per_s", static_cast<double>(statements) / elapsed},
                   {"p50_us", percentile(all, 0.50) / 1000.0},
                   {"p99_us", percentile(all, 0.99) / 1000.0},
                   {"p999_us", percentile(all, 0.999) / 1000.0},
                   {"max_us", percentile(all, 1.0) / 1000.0},
                   {"swaps", static_cast<double>(swaps)},
                   {"swaps_per_s", static_cast<double>(swaps) / elapsed},
                   {"moves", static_cast<double>(moves)},
                   {"workers", static_cast<double>(workers)}};
  }
  fs::remove_all(dir);
  return out;
}

}  // namespace

std::vector<host_case> run_db_scenario(const host_config& config) {
  const double seconds = config.quick ? std::min(config.seconds, 1.0) : config.seconds;
  const int workers = std::stoi(config.args.get("workers", "2"));
  const int swap_ms = std::stoi(config.args.get("swap_ms", "5"));
  return {run_case("steady", false, seconds, workers, swap_ms), run_case("swapping", true, seconds, workers, swap_ms)};
}

}  // namespace hotswap::stress
