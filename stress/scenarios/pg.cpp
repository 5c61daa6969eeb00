// The `pg` end-to-end scenario: a real PostgreSQL 15 server with hotswap_pg
// (adapters/pg), libpq sessions running transactions while one session swaps
// their container.
//
// The server is a throwaway one (hotswap::pg::temp_server: initdb into /tmp, a
// Unix socket only, stopped at the end; as root it runs as `postgres`). Client
// threads, one session each, run short transactions like pgbench's: BEGIN,
// container_version(), add_one(container_version()) - 1, COMMIT, and check the
// two calls answered from one build. One more session runs long transactions
// that span swaps: it reads the build and its backend's version
// (hotswap.versions), sleeps --scenario-arg long_ms (default 250), reads both
// again. Case "steady" swaps nothing; case "swapping" calls hotswap.swap()
// every --scenario-arg swap_ms (default 100) through builds v2, v3, v1, ...
//
// Invariants: no failed transaction; no transaction that saw two builds; a
// long transaction keeps its version across every swap published meanwhile;
// a new transaction runs at least the version published before it began; no
// swap refused by any backend; after the run each client's next transaction is
// on the last version, and its backend maps no more container copies than
// after its first call (replaced versions unloaded, counted in
// /proc/<backend pid>/maps). Reported: transactions/s (and the ratio to the
// steady case), latency percentiles, swaps/s, the mappings left.
#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "host_scenario.hpp"
#include "temp_server.hpp"

namespace hotswap::stress {

namespace {

using clock_type = std::chrono::steady_clock;

// One libpq session (a backend of its own).
class pq_session {
 public:
  explicit pq_session(const std::string& conninfo) : conn_(PQconnectdb(conninfo.c_str())) {
    if (PQstatus(conn_) != CONNECTION_OK) {
      const std::string message = PQerrorMessage(conn_);
      PQfinish(conn_);
      throw std::runtime_error("connect: " + message);
    }
  }
  ~pq_session() { PQfinish(conn_); }
  pq_session(const pq_session&) = delete;
  pq_session& operator=(const pq_session&) = delete;

  /// Runs `sql`: the first row's columns (none for a command); throws with the server's message.
  std::vector<std::string> row(const std::string& sql) {
    std::unique_ptr<PGresult, void (*)(PGresult*)> r(PQexec(conn_, sql.c_str()), &PQclear);
    const ExecStatusType status = PQresultStatus(r.get());
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK)
      throw std::runtime_error(sql + ": " + PQresultErrorMessage(r.get()));
    std::vector<std::string> out;
    if (status == PGRES_TUPLES_OK && PQntuples(r.get()) > 0)
      for (int c = 0; c < PQnfields(r.get()); ++c) out.emplace_back(PQgetvalue(r.get(), 0, c));
    return out;
  }
  long long number(const std::string& sql) { return std::stoll(row(sql).at(0)); }
  /// Ends a transaction an error left open; false when the connection is gone.
  bool recover() {
    PQclear(PQexec(conn_, "ROLLBACK"));
    return PQstatus(conn_) == CONNECTION_OK;
  }
  int backend_pid() const { return PQbackendPID(conn_); }

 private:
  PGconn* conn_;
};

// Lines of /proc/<pid>/maps that map a container copy (the memfd copy names the file).
int container_mappings(int pid) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  int n = 0;
  for (std::string line; std::getline(maps, line);)
    if (line.find("pg_version_v") != std::string::npos) ++n;
  return n;
}

// What one session's loop saw.
struct client_result {
  std::vector<double> latency_ms;
  std::uint64_t transactions = 0, failed = 0, mixed = 0;
  std::uint64_t spanned_swaps = 0, stale = 0;  // long transactions only
  int pid = 0;
  std::string failure;  ///< the first error
};

class pg_run {
 public:
  /// `one_version`: the lines of /proc/<pid>/maps one loaded version takes.
  pg_run(const pg::temp_server& server, int clients, int long_ms, int one_version)
      : conninfo_(server.conninfo()), clients_(clients), long_ms_(long_ms), one_version_(one_version) {}

  host_case run(const std::string& name, double seconds, int swap_ms, double steady_tps) {
    host_case out;
    out.name = name;
    std::vector<client_result> results(static_cast<std::size_t>(clients_) + 1);
    std::vector<std::unique_ptr<pq_session>> sessions;
    for (int i = 0; i <= clients_; ++i) sessions.push_back(std::make_unique<pq_session>(conninfo_));
    stop_.store(false);
    std::vector<std::thread> threads;
    for (int i = 0; i < clients_; ++i)
      threads.emplace_back([&, i] { short_loop(*sessions[static_cast<std::size_t>(i)], results[static_cast<std::size_t>(i)]); });
    threads.emplace_back([&] { long_loop(*sessions.back(), results.back()); });

    pq_session admin(conninfo_);
    const char* cycle[] = {"pg_version_v2.so", "pg_version_v3.so", "pg_version_v1.so"};
    std::uint64_t swaps = 0, refused = 0;
    const auto start = clock_type::now();
    const auto end = start + std::chrono::duration<double>(seconds);
    // One swap every swap_ms (start to start); each returns once published, not waiting for moves.
    for (auto next = start; clock_type::now() < end;) {
      next += std::chrono::milliseconds(swap_ms > 0 ? swap_ms : 20);
      if (swap_ms > 0) {
        try {
          const auto r = admin.row(std::string("SELECT version, refused FROM hotswap.swap('ver', '") +
                                   cycle[swaps % 3] + "')");
          ++swaps;
          refused += std::stoull(r.at(1));
          latest_published_.store(std::stoll(r.at(0)), std::memory_order_release);  // pairs with long_loop's acquire
        } catch (const std::exception& e) {
          out.violations.push_back(std::string("swap failed: ") + e.what());
          admin.recover();
        }
      }
      std::this_thread::sleep_until(next);
    }
    stop_.store(true);
    for (auto& t : threads) t.join();
    const double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();

    std::uint64_t transactions = 0, failed = 0, mixed = 0;  // the short transactions, and every failure
    std::vector<double> latency;
    int max_mappings = 0;
    const long long last = admin.number("SELECT version FROM hotswap.containers WHERE container = 'ver'");
    for (std::size_t i = 0; i < results.size(); ++i) {
      client_result& r = results[i];
      if (!r.failure.empty()) out.violations.push_back("session " + std::to_string(r.pid) + ": " + r.failure);
      failed += r.failed;
      mixed += r.mixed;
      if (i + 1 < results.size()) {
        transactions += r.transactions;
        latency.insert(latency.end(), r.latency_ms.begin(), r.latency_ms.end());
      }
      // Its next transaction moves to the last version, and the replaced ones unload
      // (the kernel's workers, after a grace period: polled, bounded).
      try {
        pq_session& s = *sessions[i];
        s.row("SELECT container_version()");
        const long long on =
            s.number("SELECT version FROM hotswap.versions WHERE pid = pg_backend_pid() AND container = 'ver'");
        if (on != last)
          out.violations.push_back("session " + std::to_string(r.pid) + " runs version " + std::to_string(on) +
                                   " in a new transaction after version " + std::to_string(last) + " was published");
      } catch (const std::exception& e) {
        out.violations.push_back("session " + std::to_string(r.pid) + " after the run: " + e.what());
      }
      int n = container_mappings(r.pid);
      for (int k = 0; k < 100 && n > one_version_; ++k) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        n = container_mappings(r.pid);
      }
      max_mappings = std::max(max_mappings, n);
      if (n > one_version_)
        out.violations.push_back("backend " + std::to_string(r.pid) + " maps " + std::to_string(n) +
                                 " container lines, one version takes " + std::to_string(one_version_) +
                                 ": replaced versions stayed mapped");
    }
    const client_result& lg = results.back();
    if (failed != 0) out.violations.push_back(std::to_string(failed) + " failed transactions");
    if (mixed != 0) out.violations.push_back(std::to_string(mixed) + " transactions saw two builds");
    if (lg.stale != 0)
      out.violations.push_back(std::to_string(lg.stale) + " transactions began on a version older than the published one");
    if (refused != 0) out.violations.push_back(std::to_string(refused) + " backend moves refused");
    if (swap_ms > 0 && swaps == 0) out.violations.push_back("no swap happened");
    if (swap_ms > 0 && lg.spanned_swaps == 0)
      out.violations.push_back("no long transaction spanned a swap: the check never ran");

    const double tps = static_cast<double>(transactions) / elapsed;
    out.metrics = {{"transactions", static_cast<double>(transactions)},
                   {"tps", tps},
                   {"tps_vs_steady", steady_tps > 0 ? tps / steady_tps : 1.0},
                   {"p50_ms", percentile(latency, 0.50)},
                   {"p99_ms", percentile(latency, 0.99)},
                   {"max_ms", percentile(latency, 1.0)},
                   {"failed", static_cast<double>(failed)},
                   {"mixed_versions", static_cast<double>(mixed)},
                   {"swaps", static_cast<double>(swaps)},
                   {"swaps_per_s", static_cast<double>(swaps) / elapsed},
                   {"refused", static_cast<double>(refused)},
                   {"long_transactions", static_cast<double>(lg.transactions)},
                   {"long_spanning_swaps", static_cast<double>(lg.spanned_swaps)},
                   {"container_maps_max", static_cast<double>(max_mappings)},
                   {"clients", static_cast<double>(clients_)}};
    return out;
  }

 private:
  // The session's first call loads the container.
  void first_call(pq_session& s, client_result& r) {
    r.pid = s.backend_pid();
    s.row("SELECT container_version()");
  }

  // pgbench-like: BEGIN, two container calls that must agree, COMMIT; every one timed.
  void short_loop(pq_session& s, client_result& r) {
    try {
      first_call(s, r);
    } catch (const std::exception& e) {
      r.failure = e.what();
      return;
    }
    r.latency_ms.reserve(1 << 18);
    while (!stop_.load(std::memory_order_relaxed) && r.transactions < 50'000'000) {
      const auto t0 = clock_type::now();
      try {
        s.row("BEGIN");
        const long long a = s.number("SELECT container_version()");
        const long long b = s.number("SELECT add_one(container_version()) - 1");
        s.row("COMMIT");
        r.mixed += a != b;
      } catch (const std::exception& e) {
        ++r.failed;
        if (r.failure.empty()) r.failure = e.what();
        if (!s.recover()) return;
      }
      ++r.transactions;
      if (r.latency_ms.size() < r.latency_ms.capacity())
        r.latency_ms.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
    }
  }

  // Transactions that span swaps: the build and the backend's version, twice, long_ms apart.
  void long_loop(pq_session& s, client_result& r) {
    try {
      first_call(s, r);
    } catch (const std::exception& e) {
      r.failure = e.what();
      return;
    }
    const std::string version = "SELECT version FROM hotswap.versions WHERE pid = pg_backend_pid() AND container = 'ver'";
    const std::string nap = "SELECT pg_sleep(" + std::to_string(long_ms_ / 1000.0) + ")";
    while (!stop_.load(std::memory_order_relaxed) && r.transactions < 1'000'000) {
      const long long before = latest_published_.load(std::memory_order_acquire);  // pairs with run()'s release
      try {
        s.row("BEGIN");
        const long long build1 = s.number("SELECT container_version()");
        const long long v1 = s.number(version);
        const long long during = latest_published_.load(std::memory_order_acquire);
        s.row(nap);
        const long long after = latest_published_.load(std::memory_order_acquire);
        const long long build2 = s.number("SELECT container_version()");
        const long long v2 = s.number(version);
        s.row("COMMIT");
        r.mixed += build1 != build2 || v1 != v2;
        r.stale += v1 < before;
        r.spanned_swaps += after > during;
      } catch (const std::exception& e) {
        ++r.failed;
        if (r.failure.empty()) r.failure = e.what();
        if (!s.recover()) return;
      }
      ++r.transactions;
    }
  }

  std::string conninfo_;
  int clients_;
  int long_ms_;
  int one_version_;
  std::atomic<bool> stop_{false};
  std::atomic<long long> latest_published_{0};  ///< the newest version whose swap() call has returned
};

}  // namespace

std::vector<host_case> run_pg_scenario(const host_config& config) {
  const double seconds = config.quick ? std::min(config.seconds, 2.0) : config.seconds;
  const int clients = std::stoi(config.args.get("clients", "2"));
  const int swap_ms = std::stoi(config.args.get("swap_ms", "100"));
  const int long_ms = std::stoi(config.args.get("long_ms", "250"));
  std::string why_not;
  const auto server = pg::temp_server::start({HOTSWAP_PG_BINDIR, HOTSWAP_PG_SHAREDIR, HOTSWAP_PG_EXTENSION_DIR,
                                              HOTSWAP_PG_LIBRARY, HOTSWAP_PG_CONTAINER_DIR, "max_connections = 20\n"},
                                             &why_not);
  if (server == nullptr) {
    std::vector<host_case> skipped(2);
    skipped[0].name = "steady";
    skipped[1].name = "swapping";
    for (auto& c : skipped) c.skip_reason = why_not;
    return skipped;
  }
  int one_version = 0;
  {
    pq_session admin(server->conninfo());
    admin.row("CREATE EXTENSION hotswap_pg");
    admin.row("SELECT hotswap.define('ver', 'container_version()', 'int4')");
    admin.row("SELECT hotswap.define('ver', 'add_one(int4)', 'int4')");
    admin.row("SELECT hotswap.swap('ver', 'pg_version_v1.so')");
    // Measured in a fresh session, not the swapping one: that one loaded the file once for the
    // swap's own check and once more when its session moved (the first copy unloads later).
    pq_session first(server->conninfo());
    first.row("SELECT container_version()");
    one_version = container_mappings(first.backend_pid());
  }
  if (one_version == 0) {  // the check below would pass vacuously
    std::vector<host_case> failed(1);
    failed[0].name = "setup";
    failed[0].violations.push_back("no container lines in /proc/<backend pid>/maps: cannot check unloading");
    return failed;
  }
  pg_run run(*server, clients, long_ms, one_version);
  std::vector<host_case> cases;
  cases.push_back(run.run("steady", seconds, 0, 0));
  const auto& steady = cases.back().metrics;
  const double steady_tps = std::find_if(steady.begin(), steady.end(), [](const auto& m) { return m.first == "tps"; })->second;
  cases.push_back(run.run("swapping", seconds, swap_ms, steady_tps));
  return cases;
}

}  // namespace hotswap::stress
