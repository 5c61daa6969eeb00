// hotswap-bench-db: what a row costs when a SQL function comes from a swappable container.
//
// One query, SELECT sum(tag(x)) FROM t over 10,000 rows, with tag() four ways:
//
//   BM_row/builtin        sum(x * 10 + 1) in plain SQL: SQLite's own per-row floor
//   BM_row/direct         a native tag() registered with sqlite3_create_function_v2
//   BM_row/trampoline     the container's tag() through hotswap::db::connection (the
//                         host-owned trampoline, the connection's pinned version)
//   BM_row/stat_per_call  the original's approach: the native tag() plus a stat() of the
//                         container file on every call, comparing its modification time
//
//   BM_row/interleaved    direct and trampoline alternating in one loop (see below)
//
// Per-row cost is CPU time / rows (s_per_row); the target is trampoline <= 1.05 x direct.
// BM_row/trampoline_swapping also swaps the container between two builds on another
// thread every millisecond while the query runs (the connection moves between queries).
#include <benchmark/benchmark.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <ctime>

#include <hotswap/db/connection.hpp>

namespace {

namespace fs = std::filesystem;
constexpr int rows = 10000;

fs::path container(const char* name) { return fs::path(HOTSWAP_DB_CONTAINER_DIR) / (std::string(name) + ".so"); }

struct memory_db {
  sqlite3* db = nullptr;
  memory_db() {
    sqlite3_open(":memory:", &db);
    sqlite3_exec(db,
                 "CREATE TABLE t(x INTEGER); WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM c "
                 "WHERE n < 10000) INSERT INTO t SELECT n FROM c;",
                 nullptr, nullptr, nullptr);
  }
  ~memory_db() { sqlite3_close(db); }
};

void native_tag(sqlite3_context* ctx, int, sqlite3_value** argv) {
  sqlite3_result_int64(ctx, sqlite3_value_int64(argv[0]) * 10 + 1);
}

struct stat_check {
  std::string file;
  struct timespec seen{};
};

// The seed's per-call check: is the container file still the one we loaded?
void stat_tag(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  auto* check = static_cast<stat_check*>(sqlite3_user_data(ctx));
  struct stat st{};
  if (::stat(check->file.c_str(), &st) != 0 || st.st_mtim.tv_sec != check->seen.tv_sec ||
      st.st_mtim.tv_nsec != check->seen.tv_nsec) {
    sqlite3_result_error(ctx, "container changed", -1);
    return;
  }
  native_tag(ctx, argc, argv);
}

void run_query(benchmark::State& state, sqlite3* db, const char* sql) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) != SQLITE_OK) {
    state.SkipWithError(sqlite3_errmsg(db));
    return;
  }
  std::int64_t sum = 0;
  for (auto _ : state) {
    if (sqlite3_step(st) != SQLITE_ROW) {
      state.SkipWithError(sqlite3_errmsg(db));
      break;
    }
    sum += sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
  }
  benchmark::DoNotOptimize(sum);
  sqlite3_finalize(st);
  // Seconds per row (printed with an SI prefix: 61n = 61 ns).
  state.counters["s_per_row"] = benchmark::Counter(static_cast<double>(state.iterations()) * rows,
                                                   benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_row_builtin(benchmark::State& state) {
  memory_db m;
  run_query(state, m.db, "SELECT sum(x * 10 + 1) FROM t");
}

void BM_row_direct(benchmark::State& state) {
  memory_db m;
  sqlite3_create_function_v2(m.db, "tag", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, nullptr, &native_tag, nullptr,
                             nullptr, nullptr);
  run_query(state, m.db, "SELECT sum(tag(x)) FROM t");
}

void BM_row_stat_per_call(benchmark::State& state) {
  memory_db m;
  stat_check check{container("version_v1").string(), {}};
  struct stat st{};
  ::stat(check.file.c_str(), &st);
  check.seen = st.st_mtim;
  sqlite3_create_function_v2(m.db, "tag", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, &check, &stat_tag, nullptr, nullptr,
                             nullptr);
  run_query(state, m.db, "SELECT sum(tag(x)) FROM t");
}

hotswap::db::host_options bench_host_options() {
  hotswap::db::host_options o;
  o.container_dir = HOTSWAP_DB_CONTAINER_DIR;
  return o;
}

void BM_row_trampoline(benchmark::State& state) {
  hotswap::db::container_host host(bench_host_options());
  host.load("ver", container("version_v1"));
  memory_db m;
  {
    hotswap::db::connection conn(host, m.db);
    conn.attach("ver");
    run_query(state, m.db, "SELECT sum(tag(x)) FROM t");
  }
}

void BM_row_trampoline_swapping(benchmark::State& state) {
  hotswap::db::container_host host(bench_host_options());
  host.load("ver", container("version_v1"));
  memory_db m;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> swaps{0};
  std::thread swapper([&] {
    for (std::uint64_t i = 0; !stop.load(std::memory_order_relaxed) && i < 100000; ++i) {
      try {
        host.swap("ver", container(i % 2 == 0 ? "version_v2" : "version_v1"));
        swaps.fetch_add(1, std::memory_order_relaxed);
      } catch (const hotswap::modules::module_error&) {  // backpressure: the connection still pins an old version
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  {
    hotswap::db::connection conn(host, m.db);
    conn.attach("ver");
    run_query(state, m.db, "SELECT sum(tag(x)) FROM t");
    stop.store(true);
    swapper.join();
    state.counters["swaps"] = static_cast<double>(swaps.load());
    state.counters["moves"] = static_cast<double>(conn.counters().moves);
  }
}

// Direct and trampoline queries interleaved on one connection, timed by this
// thread's CPU clock, in alternating order: a load change on a shared machine
// hits both sides alike, so their ratio is steadier than two separate rows.
void BM_row_interleaved(benchmark::State& state) {
  hotswap::db::container_host host(bench_host_options());
  host.load("ver", container("version_v1"));
  memory_db m;
  sqlite3_create_function_v2(m.db, "tag_direct", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, nullptr, &native_tag, nullptr,
                             nullptr, nullptr);
  hotswap::db::connection conn(host, m.db);
  conn.attach("ver");
  sqlite3_stmt* direct = nullptr;
  sqlite3_stmt* trampoline = nullptr;
  sqlite3_prepare_v2(m.db, "SELECT sum(tag_direct(x)) FROM t", -1, &direct, nullptr);
  sqlite3_prepare_v2(m.db, "SELECT sum(tag(x)) FROM t", -1, &trampoline, nullptr);
  auto cpu_ns = [] {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
  };
  auto once = [](sqlite3_stmt* st) {
    sqlite3_step(st);
    benchmark::DoNotOptimize(sqlite3_column_int64(st, 0));
    sqlite3_reset(st);
  };
  double direct_ns = 0, trampoline_ns = 0;
  bool direct_first = true;
  for (auto _ : state) {
    sqlite3_stmt* first = direct_first ? direct : trampoline;
    sqlite3_stmt* second = direct_first ? trampoline : direct;
    const double t0 = cpu_ns();
    once(first);
    const double t1 = cpu_ns();
    once(second);
    const double t2 = cpu_ns();
    (direct_first ? direct_ns : trampoline_ns) += t1 - t0;
    (direct_first ? trampoline_ns : direct_ns) += t2 - t1;
    direct_first = !direct_first;
  }
  sqlite3_finalize(direct);
  sqlite3_finalize(trampoline);
  const double n = static_cast<double>(state.iterations()) * rows;
  state.counters["direct_ns_per_row"] = direct_ns / n;
  state.counters["trampoline_ns_per_row"] = trampoline_ns / n;
  state.counters["trampoline_over_direct"] = trampoline_ns / direct_ns;
}

BENCHMARK(BM_row_builtin)->Name("BM_row/builtin");
BENCHMARK(BM_row_direct)->Name("BM_row/direct");
BENCHMARK(BM_row_trampoline)->Name("BM_row/trampoline");
BENCHMARK(BM_row_stat_per_call)->Name("BM_row/stat_per_call");
BENCHMARK(BM_row_interleaved)->Name("BM_row/interleaved");
BENCHMARK(BM_row_trampoline_swapping)->Name("BM_row/trampoline_swapping")->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
