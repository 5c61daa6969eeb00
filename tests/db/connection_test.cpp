// One connection, one thread: transitions, policies, errors, function lists, migration.
#include <sys/stat.h>

#include <thread>

#include "db_fixture.hpp"

namespace dbtest {
namespace {

class db_connection : public ::testing::Test {
 protected:
  temp_dir dir;
  event_log log;
  container_host host{options_for(dir.path / "shadow", log)};
  sqlite_db db{dir.path / "test.db"};

  void SetUp() override { host.load("ver", container("version_v1")); }
  std::string me() const { return pointer_text(db.db); }
};

TEST_F(db_connection, moves_at_the_next_statement_with_shutdown_then_startup) {
  {
    connection conn(host, db);
    conn.attach("ver");
    EXPECT_EQ(one(db, "SELECT container_version()"), "1");
    host.swap("ver", container("version_v2"));
    EXPECT_EQ(one(db, "SELECT container_version()"), "2");
    EXPECT_EQ(conn.counters().moves, 1u);
    EXPECT_EQ(conn.version_of("ver"), 2u);
  }
  const auto hooks = log.hooks(me());
  ASSERT_EQ(hooks.size(), 4u);
  EXPECT_EQ(hooks[0].what + std::to_string(hooks[0].version), "conn-startup1");
  EXPECT_EQ(hooks[1].what + std::to_string(hooks[1].version), "conn-shutdown1");
  EXPECT_EQ(hooks[2].what + std::to_string(hooks[2].version), "conn-startup2");
  EXPECT_EQ(hooks[3].what + std::to_string(hooks[3].version), "conn-shutdown2");
}

TEST_F(db_connection, a_long_statement_finishes_on_its_starting_version_across_swaps) {
  connection conn(host, db);
  conn.attach("ver");
  ASSERT_EQ(exec(db, "CREATE TABLE nums(n INTEGER); WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM c "
                     "WHERE n < 300) INSERT INTO nums SELECT n FROM c;"),
            "");
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT container_version(), tag(n) FROM nums", -1, &st, nullptr), SQLITE_OK);
  int rows = 0;
  const char* swaps[] = {"version_v2", "version_v3"};
  while (sqlite3_step(st) == SQLITE_ROW) {
    EXPECT_EQ(sqlite3_column_int(st, 0), 1);
    EXPECT_EQ(sqlite3_column_int64(st, 1) % 10, 1);
    if (++rows % 100 == 0 && rows / 100 <= 2) {
      host.swap("ver", container(swaps[rows / 100 - 1]));
      // Another statement while this one is mid-way: not a safe point.
      EXPECT_EQ(one(db, "SELECT container_version()"), "1");
    }
  }
  sqlite3_finalize(st);
  EXPECT_EQ(rows, 300);
  EXPECT_EQ(one(db, "SELECT container_version()"), "3");
  EXPECT_EQ(conn.counters().moves, 1u);  // straight from 1 to 3
}

TEST_F(db_connection, next_transaction_policy_waits_for_the_transaction_to_end) {
  connection conn(host, db, move_policy::next_transaction);
  conn.attach("ver");
  ASSERT_EQ(exec(db, "BEGIN"), "");
  EXPECT_EQ(one(db, "SELECT container_version()"), "1");
  host.swap("ver", container("version_v2"));
  EXPECT_EQ(one(db, "SELECT container_version()"), "1");
  ASSERT_EQ(exec(db, "COMMIT"), "");
  EXPECT_EQ(one(db, "SELECT container_version()"), "2");
}

TEST_F(db_connection, never_policy_pins_until_switched_at_run_time) {
  connection conn(host, db, move_policy::never);
  conn.attach("ver");
  host.swap("ver", container("version_v2"));
  EXPECT_EQ(one(db, "SELECT container_version()"), "1");
  EXPECT_EQ(one(db, "SELECT container_version()"), "1");
  conn.set_policy(move_policy::next_statement);
  EXPECT_EQ(one(db, "SELECT container_version()"), "2");
}

TEST_F(db_connection, failed_startup_leaves_the_connection_on_its_version) {
  connection conn(host, db);
  conn.attach("ver");
  EXPECT_EQ(one(db, "SELECT calls()"), "1");
  host.swap("ver", container("version_startup_fails"));
  EXPECT_EQ(one(db, "SELECT container_version()"), "1");
  EXPECT_EQ(one(db, "SELECT calls()"), "2");  // restarted with the state it had saved
  EXPECT_NE(conn.last_error("ver").find("refuses this connection"), std::string::npos) << conn.last_error("ver");
  EXPECT_EQ(conn.counters().failed_startups, 1u);
  EXPECT_EQ(one(db, "SELECT container_version()"), "1");  // not retried for the same version
  EXPECT_EQ(conn.counters().failed_startups, 1u);
  host.swap("ver", container("version_v2"));
  EXPECT_EQ(one(db, "SELECT container_version()"), "2");
  EXPECT_EQ(conn.last_error("ver"), "");
  const auto hooks = log.hooks(me());
  std::vector<std::string> seen;
  for (const auto& h : hooks) seen.push_back(h.what + std::to_string(h.version));
  EXPECT_EQ(seen, (std::vector<std::string>{"conn-startup1", "conn-shutdown1", "conn-startup-failed5", "conn-startup1",
                                            "conn-shutdown1", "conn-startup2"}));
}

TEST_F(db_connection, a_container_error_is_an_sql_error_on_that_statement) {
  connection conn(host, db);
  conn.attach("ver");
  host.swap("ver", container("version_raises"));
  const std::string why = exec(db, "SELECT container_version()");
  EXPECT_NE(why.find("boom from version 6"), std::string::npos) << why;
  EXPECT_NE(why.find("container_version() in ver version 2"), std::string::npos) << why;
  EXPECT_EQ(one(db, "SELECT tag(4)"), "46");  // the rest of the container still works
}

TEST_F(db_connection, state_migrates_across_versions) {
  connection conn(host, db);
  conn.attach("ver");
  for (int i = 1; i <= 3; ++i) EXPECT_EQ(one(db, "SELECT calls()"), std::to_string(i));
  host.swap("ver", container("version_v2"));
  EXPECT_EQ(one(db, "SELECT calls()"), "4");
}

TEST_F(db_connection, aggregates_and_trigger_procedures_run_on_the_connections_version) {
  connection conn(host, db);
  conn.attach("ver");
  ASSERT_EQ(exec(db, "CREATE TABLE items(x INTEGER); CREATE TABLE audit_log(version INTEGER, x INTEGER);"
                     "CREATE TRIGGER items_audit AFTER INSERT ON items BEGIN SELECT audit(NEW.x); END;"),
            "");
  ASSERT_EQ(exec(db, "INSERT INTO items VALUES (1), (2), (3)"), "");
  EXPECT_EQ(one(db, "SELECT vsum(x) FROM items"), "1000000006");
  host.swap("ver", container("version_v2"));
  ASSERT_EQ(exec(db, "INSERT INTO items VALUES (4)"), "");
  EXPECT_EQ(column(db, "SELECT version || ':' || x FROM audit_log ORDER BY x"),
            (std::vector<std::string>{"1:1", "1:2", "1:3", "2:4"}));
  EXPECT_EQ(one(db, "SELECT vsum(x) FROM items"), "2000000010");
}

TEST_F(db_connection, a_changed_function_list_is_registered_without_touching_unchanged_ones) {
  connection conn(host, db);
  conn.attach("ver");
  const std::uint64_t registered = conn.counters().registrations;
  EXPECT_EQ(registered, 5u);
  host.swap("ver", container("version_changed_list"));
  EXPECT_EQ(one(db, "SELECT container_version()"), "4");   // the move
  EXPECT_EQ(one(db, "SELECT extra()"), "extra");            // added at the move
  EXPECT_NE(exec(db, "SELECT vsum(1)").find("vsum() is not in ver version 2"), std::string::npos);
  EXPECT_EQ(conn.pending_registrations(), 2u);               // vsum removed, tag's flags changed
  EXPECT_EQ(conn.counters().registrations, registered + 1);  // extra only
  ASSERT_TRUE(conn.safe_point());
  EXPECT_EQ(conn.pending_registrations(), 0u);
  EXPECT_NE(exec(db, "SELECT vsum(1)").find("no such function"), std::string::npos);
  EXPECT_EQ(one(db, "SELECT tag(1)"), "14");
  // Back to the first list: vsum returns, tag deterministic again.
  host.swap("ver", container("version_v1"));
  ASSERT_TRUE(conn.safe_point());
  EXPECT_EQ(one(db, "SELECT vsum(5)"), "1000000005");
  EXPECT_NE(exec(db, "SELECT extra()").find("no such function"), std::string::npos);
}

TEST_F(db_connection, re_registration_waits_while_a_statement_is_active) {
  connection conn(host, db);
  conn.attach("ver");
  host.swap("ver", container("version_changed_list"));
  ASSERT_EQ(one(db, "SELECT container_version()"), "4");
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT 1 UNION ALL SELECT 2", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_FALSE(conn.safe_point());
  EXPECT_EQ(conn.pending_registrations(), 2u);
  sqlite3_finalize(st);
  EXPECT_TRUE(conn.safe_point());
  EXPECT_EQ(conn.pending_registrations(), 0u);
}

TEST_F(db_connection, rollback_publishes_the_old_bytes_as_a_new_version) {
  connection conn(host, db);
  conn.attach("ver");
  host.swap("ver", container("version_v2"));
  EXPECT_EQ(one(db, "SELECT container_version()"), "2");
  const swap_report r = host.rollback("ver", 1);
  EXPECT_EQ(r.version, 3u);
  EXPECT_EQ(one(db, "SELECT container_version()"), "1");
  const auto list = host.list();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].serving, 3u);
  EXPECT_EQ(list[0].build, "1.0.0");
}

TEST_F(db_connection, shadow_copies_are_named_after_the_original_and_its_modification_time) {
  connection conn(host, db);
  conn.attach("ver");
  const auto list = host.list();
  const std::string load_path = list.at(0).versions.back().id.load_path;
  struct stat st{};
  ASSERT_EQ(::stat(container("version_v1").c_str(), &st), 0);
  const long long mtime_ns = static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
  EXPECT_NE(load_path.find((dir.path / "shadow").string()), std::string::npos) << load_path;
  EXPECT_TRUE(load_path.ends_with(".version_v1.so")) << load_path;
  EXPECT_NE(load_path.find(std::to_string(mtime_ns)),
            std::string::npos)
      << load_path;
}

TEST(db_host_in_place, caching_off_loads_the_original) {
  temp_dir dir;
  event_log log;
  host_options o = options_for(dir.path / "shadow", log);
  o.shadow_copies = false;
  container_host host(o);
  host.load("ver", container("version_v1"));
  // In place: dlopen goes through the descriptor the checks used (/proc/self/fd/N), which names the original.
  const std::string load_path = host.list().at(0).versions.back().id.load_path;
  ASSERT_TRUE(load_path.starts_with("/proc/self/fd/")) << load_path;
  EXPECT_EQ(fs::read_symlink(load_path), fs::canonical(container("version_v1")));
  sqlite_db db(dir.path / "t.db");
  connection conn(host, db);
  conn.attach("ver");
  host.swap("ver", container("version_v2"));
  EXPECT_EQ(one(db, "SELECT container_version()"), "2");
}

TEST(db_host_watch, a_new_file_is_swapped_in_by_the_watcher) {
  temp_dir dir;
  event_log log;
  fs::create_directories(dir.path / "containers");
  const fs::path file = dir.path / "containers" / "ver.so";
  fs::copy_file(container("version_v1"), file);
  host_options o = options_for(dir.path / "shadow", log);
  o.container_dir = dir.path / "containers";
  container_host host(o);
  host.load("ver", file);
  sqlite_db db(dir.path / "t.db");
  connection conn(host, db);
  conn.attach("ver");
  host.watch(std::chrono::milliseconds(20));
  fs::copy_file(container("version_v2"), dir.path / "containers" / "ver.tmp");
  fs::rename(dir.path / "containers" / "ver.tmp", file);
  for (int i = 0; i < 200 && host.list().at(0).serving == 1; ++i) {
    host.sync_watcher(std::chrono::seconds(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(one(db, "SELECT container_version()"), "2");
}

}  // namespace
}  // namespace dbtest
