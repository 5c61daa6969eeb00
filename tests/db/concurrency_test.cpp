// Several connections, each on its own thread, query and insert (firing a
// trigger procedure) in a WAL database while the container is swapped over
// and over. Every statement must see one version, every transition must be
// shutdown-then-startup exactly once, no statement may run in unloaded code,
// and every row and trigger side effect must be there at the end.
#include <chrono>
#include <map>
#include <thread>

#include "db_fixture.hpp"

namespace dbtest {
namespace {

struct statement_record {
  std::uint64_t slot_version;  // the connection's pinned version after the statement
  int container_version;       // what the rows said
  std::uint64_t stamp;         // global order: when the statement finished
};

TEST(db_concurrency, swaps_under_queries_and_trigger_inserts_keep_every_invariant) {
  constexpr int workers = 3;
  constexpr int iterations = 150;  // per worker; bounded by time below as well
  constexpr int swaps = 24;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);

  temp_dir dir;
  event_log log;
  std::atomic<std::uint64_t> clock{0};
  log.clock = &clock;
  host_options options = options_for(dir.path / "shadow", log);
  options.history = 2 * swaps;  // every version's build stays listed for the checks below
  container_host host(options);
  host.load("ver", container("version_v1"));
  const fs::path file = dir.path / "wal.db";
  {
    sqlite_db setup(file);
    ASSERT_EQ(one(setup, "PRAGMA journal_mode=WAL"), "wal");
    ASSERT_EQ(exec(setup, "CREATE TABLE nums(n INTEGER);"
                          "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM c WHERE n < 200) "
                          "INSERT INTO nums SELECT n FROM c;"
                          "CREATE TABLE items(id INTEGER PRIMARY KEY, worker INTEGER, v INTEGER);"
                          "CREATE TABLE audit_log(version INTEGER, x INTEGER);"),
              "");
    // The trigger needs audit() registered on whichever connection inserts; created by a bound one below.
  }

  std::vector<std::vector<statement_record>> records(workers);
  std::vector<connection_counters> counters(workers);
  std::vector<std::string> dbs(workers), failures(workers);
  std::vector<int> inserted(workers, 0);
  std::atomic<int> ready{0};
  std::atomic<bool> stop{false};

  auto worker = [&](int w) {
    try {
      sqlite_db db(file);
      dbs[w] = pointer_text(db.db);
      if (auto e = exec(db, "PRAGMA synchronous=NORMAL"); !e.empty()) throw std::runtime_error(e);
      connection conn(host, db);
      conn.attach("ver");
      if (w == 0)
        if (auto e = exec(db, "CREATE TRIGGER IF NOT EXISTS items_audit AFTER INSERT ON items "
                              "BEGIN SELECT audit(NEW.id); END;");
            !e.empty())
          throw std::runtime_error(e);
      ready.fetch_add(1);
      while (ready.load() < workers) std::this_thread::yield();
      sqlite3_stmt* scan = nullptr;
      sqlite3_stmt* insert = nullptr;
      if (sqlite3_prepare_v2(db, "SELECT container_version(), tag(n), (SELECT vsum(0)) FROM nums", -1, &scan,
                             nullptr) != SQLITE_OK ||
          sqlite3_prepare_v2(db, "INSERT INTO items(worker, v) VALUES (?1, container_version())", -1, &insert,
                             nullptr) != SQLITE_OK)
        throw std::runtime_error(sqlite3_errmsg(db));
      for (int i = 0; i < iterations && std::chrono::steady_clock::now() < deadline && !stop.load(); ++i) {
        // A multi-row statement: every row from one version.
        int first = -1, rows = 0;
        while (sqlite3_step(scan) == SQLITE_ROW) {
          const int v = sqlite3_column_int(scan, 0);
          if (first < 0) first = v;
          if (v != first || sqlite3_column_int64(scan, 1) % 10 != v ||
              sqlite3_column_int64(scan, 2) != std::int64_t{v} * 1000000000)
            throw std::runtime_error("a statement mixed versions " + std::to_string(first) + " and " +
                                     std::to_string(v));
          ++rows;
        }
        if (sqlite3_reset(scan) != SQLITE_OK || rows != 200) throw std::runtime_error(sqlite3_errmsg(db));
        records[w].push_back({conn.version_of("ver"), first, clock.fetch_add(1)});
        // A transaction of trigger-firing inserts.
        if (auto e = exec(db, "BEGIN IMMEDIATE"); !e.empty()) throw std::runtime_error(e);
        for (int k = 0; k < 3; ++k) {
          sqlite3_bind_int(insert, 1, w);
          if (sqlite3_step(insert) != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(db));
          sqlite3_reset(insert);
        }
        if (auto e = exec(db, "COMMIT"); !e.empty()) throw std::runtime_error(e);
        inserted[w] += 3;
      }
      sqlite3_finalize(scan);
      sqlite3_finalize(insert);
      counters[w] = conn.counters();
    } catch (const std::exception& e) {
      failures[w] = e.what();
      stop.store(true);
      ready.fetch_add(workers);
    }
  };

  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) threads.emplace_back(worker, w);
  int published = 0;
  while (ready.load() < workers) std::this_thread::yield();
  const char* cycle[] = {"version_v2", "version_v3", "version_v1"};
  for (int s = 0; s < swaps && !stop.load() && std::chrono::steady_clock::now() < deadline; ++s) {
    try {
      host.swap("ver", container(cycle[s % 3]));
      ++published;
    } catch (const hotswap::modules::module_error& e) {
      if (e.code() != hotswap::modules::module_errc::backpressure) throw;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(15));
  }
  for (auto& t : threads) t.join();
  host.get_domain().barrier();

  for (int w = 0; w < workers; ++w) ASSERT_EQ(failures[w], "") << "worker " << w;
  EXPECT_GT(published, swaps / 2);

  // Which container version each slot version is (build "N.0.0").
  std::map<std::uint64_t, int> build_of;
  const auto listed = host.list();
  for (const auto& v : listed.at(0).versions) build_of[v.number] = std::stoi(v.id.build_version);

  std::uint64_t moves = 0;
  for (int w = 0; w < workers; ++w) {
    moves += counters[w].moves;
    EXPECT_EQ(counters[w].failed_startups, 0u);
    for (const statement_record& r : records[w]) {
      EXPECT_EQ(build_of.at(r.slot_version), r.container_version);
      for (const auto& [version, stamp] : log.unloads)
        if (version == r.slot_version) {
          EXPECT_LT(r.stamp, stamp) << "a statement ended after its version unloaded";
        }
    }
    // Hooks: startup, shutdown, startup, ... each shutdown of the version started before it.
    const auto hooks = log.hooks(dbs[w]);
    ASSERT_EQ(hooks.size(), 2 * (counters[w].moves + 1)) << "worker " << w;
    for (std::size_t i = 0; i < hooks.size(); ++i) {
      EXPECT_EQ(hooks[i].what, i % 2 == 0 ? "conn-startup" : "conn-shutdown") << "worker " << w << " hook " << i;
      if (i % 2 == 1) {
        EXPECT_EQ(hooks[i].version, hooks[i - 1].version);
      }
    }
  }
  EXPECT_GT(moves, 0u);

  sqlite_db check(file);
  int total = 0;
  for (int n : inserted) total += n;
  EXPECT_EQ(one(check, "SELECT count(*) FROM items"), std::to_string(total));
  EXPECT_EQ(one(check, "SELECT count(*) FROM audit_log"), std::to_string(total));
  // Each trigger ran on the version of the INSERT that fired it.
  EXPECT_EQ(one(check, "SELECT count(*) FROM items JOIN audit_log ON audit_log.x = items.id "
                       "WHERE audit_log.version = items.v"),
            std::to_string(total));
  EXPECT_EQ(one(check, "PRAGMA integrity_check"), "ok");
}

}  // namespace
}  // namespace dbtest
