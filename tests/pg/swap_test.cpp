// hotswap_pg: sessions move at their next transaction (or statement, or never), keep their
// state, and leave no mappings behind; plans, views and prepared statements survive swaps.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include "pg_fixture.hpp"

namespace hotswap::pg::test {
namespace {

const auto* environment = ::testing::AddGlobalTestEnvironment(new pg_environment);

using pg_swap = pg_suite;

TEST_F(pg_swap, transaction_that_spans_a_swap_keeps_its_version_and_the_next_one_moves) {
  session admin(conninfo()), a(conninfo());
  swap(admin, "pg_version_v1.so");
  EXPECT_EQ(a.value("SELECT container_version()"), "1");
  a.exec("BEGIN");
  EXPECT_EQ(a.value("SELECT container_version()"), "1");
  swap(admin, "pg_version_v2.so");
  EXPECT_EQ(a.value("SELECT container_version()"), "1") << "a transaction must not see two versions";
  EXPECT_EQ(a.value("SELECT container_version() FROM generate_series(1, 3) LIMIT 1"), "1");
  a.exec("COMMIT");
  EXPECT_EQ(a.value("SELECT container_version()"), "2") << "the next transaction moves";
  session fresh(conninfo());
  EXPECT_EQ(fresh.value("SELECT container_version()"), "2");
}

TEST_F(pg_swap, session_state_moves_with_the_session_through_save_and_startup) {
  session admin(conninfo()), a(conninfo());
  swap(admin, "pg_version_v1.so");
  EXPECT_EQ(a.value("SELECT session_calls()"), "1");
  EXPECT_EQ(a.value("SELECT session_calls()"), "2");
  swap(admin, "pg_version_v2.so");
  EXPECT_EQ(a.value("SELECT session_calls() || ':' || container_version()"), "3:2");
  swap(admin, "pg_version_v3.so");
  EXPECT_EQ(a.value("SELECT session_calls() || ':' || container_version()"), "4:3");
}

TEST_F(pg_swap, statement_transition_moves_inside_a_transaction_at_the_next_statement) {
  session admin(conninfo()), a(conninfo());
  swap(admin, "pg_version_v1.so");
  a.exec("SET hotswap.transition = 'statement'");
  a.exec("BEGIN");
  EXPECT_EQ(a.value("SELECT container_version()"), "1");
  swap(admin, "pg_version_v2.so");
  EXPECT_EQ(a.value("SELECT container_version()"), "2");
  a.exec("COMMIT");
}

TEST_F(pg_swap, never_transition_stays_until_the_setting_changes) {
  session admin(conninfo()), a(conninfo());
  swap(admin, "pg_version_v1.so");
  EXPECT_EQ(a.value("SELECT container_version()"), "1");
  a.exec("SET hotswap.transition = 'never'");
  swap(admin, "pg_version_v2.so");
  EXPECT_EQ(a.value("SELECT container_version()"), "1");
  EXPECT_EQ(a.value("SELECT container_version()"), "1");
  a.exec("SET hotswap.transition = 'transaction'");
  EXPECT_EQ(a.value("SELECT container_version()"), "2");
}

TEST_F(pg_swap, swap_counts_idle_and_moved_backends_and_the_view_shows_each_backend) {
  session admin(conninfo()), a(conninfo()), b(conninfo());
  swap(admin, "pg_version_v1.so");
  a.value("SELECT container_version()");
  b.value("SELECT container_version()");
  b.exec("BEGIN");
  b.value("SELECT container_version()");
  // a is idle, b is inside a transaction: neither has moved when the swap returns.
  const std::string counts = admin.value(
      "SELECT moved || '/' || refused || '/' || pending FROM hotswap.swap('ver', 'pg_version_v2.so', 100)");
  EXPECT_EQ(counts, "0/0/2");
  const std::string version = admin.value("SELECT version FROM hotswap.containers WHERE container = 'ver'");
  EXPECT_EQ(a.value("SELECT container_version()"), "2");
  EXPECT_EQ(admin.value("SELECT version FROM hotswap.versions WHERE pid = " + std::to_string(a.backend_pid())), version);
  EXPECT_NE(admin.value("SELECT version FROM hotswap.versions WHERE pid = " + std::to_string(b.backend_pid())), version);
  b.exec("COMMIT");
  b.value("SELECT 1");  // any statement of a new transaction moves it, container call or not
  EXPECT_EQ(admin.value("SELECT version FROM hotswap.versions WHERE pid = " + std::to_string(b.backend_pid())), version);
  EXPECT_EQ(admin.value("SELECT count(*) FROM hotswap.swap_history WHERE version = " + version +
                        " AND role = 'postgres' AND file LIKE '%pg_version_v2.so'"),
            "1");
}

TEST_F(pg_swap, prepared_statements_views_and_plans_keep_working_across_swaps) {
  session admin(conninfo()), a(conninfo());
  swap(admin, "pg_version_v1.so");
  admin.exec("CREATE OR REPLACE VIEW ver_view AS SELECT container_version() AS v");
  a.exec("PREPARE p AS SELECT container_version()");
  a.exec("PREPARE q AS SELECT add_one(v) FROM ver_view");
  EXPECT_EQ(a.value("EXECUTE p"), "1");
  EXPECT_EQ(a.value("EXECUTE q"), "2");
  swap(admin, "pg_version_v3.so");
  EXPECT_EQ(a.value("EXECUTE p"), "3");
  EXPECT_EQ(a.value("EXECUTE q"), "4");
  EXPECT_EQ(a.value("SELECT v FROM ver_view"), "3");
}

// Lines of /proc/<pid>/maps that map a container copy.
int container_mappings(int pid) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  int n = 0;
  for (std::string line; std::getline(maps, line);)
    if (line.find("pg_version_") != std::string::npos) ++n;
  return n;
}

// Polls (bounded) until the backend's container mappings fall to at most `limit`.
int settle(int pid, int limit) {
  int n = container_mappings(pid);
  for (int i = 0; i < 200 && n > limit; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    n = container_mappings(pid);
  }
  return n;
}

TEST_F(pg_swap, many_swaps_leave_no_mappings_behind) {
  session admin(conninfo()), a(conninfo());
  swap(admin, "pg_version_v1.so");
  EXPECT_EQ(a.value("SELECT container_version()"), "1");
  const int one_version = container_mappings(a.backend_pid());
  ASSERT_GT(one_version, 0) << "the memfd copy names the original file in /proc/<pid>/maps";
  constexpr int swaps = 40;
  for (int i = 0; i < swaps; ++i) {
    const bool odd = i % 2 == 0;
    swap(admin, odd ? "pg_version_v2.so" : "pg_version_v1.so");
    ASSERT_EQ(a.value("SELECT container_version()"), odd ? "2" : "1");
  }
  // Replaced versions unload on the kernel's workers after a grace period: wait for them,
  // bounded. Without unloading, `swaps` versions would stay mapped.
  EXPECT_LE(settle(a.backend_pid(), one_version), one_version) << "backend " << a.backend_pid();
  EXPECT_LE(settle(admin.backend_pid(), one_version), one_version) << "the swapping backend";
}

TEST_F(pg_swap, preflight_fork_cost_from_a_backend) {
  session admin(conninfo());
  using clock = std::chrono::steady_clock;
  auto median_ms = [&](bool preflight) {
    admin.exec(std::string("SET hotswap.preflight = ") + (preflight ? "on" : "off"));
    admin.exec("SET hotswap.preflight_remember = off");  // measure the fork, not the memo
    std::vector<double> ms;
    for (int i = 0; i < 9; ++i) {
      const auto start = clock::now();
      swap(admin, i % 2 == 0 ? "pg_version_v2.so" : "pg_version_v1.so");
      ms.push_back(std::chrono::duration<double, std::milli>(clock::now() - start).count());
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  };
  const double with = median_ms(true), without = median_ms(false);
  admin.exec("RESET hotswap.preflight");
  admin.exec("RESET hotswap.preflight_remember");
  const std::string fork_ms = admin.value(
      "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY preflight_ms)::numeric, 2) FROM "
      "(SELECT preflight_ms FROM hotswap.swap_history WHERE preflight_ms IS NOT NULL ORDER BY id DESC LIMIT 9) h");
  std::printf("swap p50: %.2f ms with the fork preflight (the preflight alone: %s ms), %.2f ms without\n", with,
              fork_ms.c_str(), without);
  RecordProperty("swap_ms_preflight", std::to_string(with));
  RecordProperty("swap_ms_no_preflight", std::to_string(without));
  RecordProperty("preflight_ms", fork_ms);
}

}  // namespace
}  // namespace hotswap::pg::test
