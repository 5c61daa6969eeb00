// Swaps that would make stored data wrong are refused unless a REINDEX is asked for.
#include <algorithm>

#include "db_fixture.hpp"

namespace dbtest {
namespace {

bool calls(std::string_view sql, const std::string& name) {
  const auto names = called_names(sql);
  return std::find(names.begin(), names.end(), name) != names.end();
}

TEST(db_schema_scan, finds_calls_and_skips_literals_comments_and_the_object_name) {
  EXPECT_TRUE(calls("CREATE INDEX tag ON t(tag(x), lower(\"y\"))", "tag"));
  EXPECT_TRUE(calls("CREATE INDEX i ON tag(x) WHERE tag (x) > 0", "tag"));
  EXPECT_FALSE(calls("CREATE INDEX i ON tag(x)", "tag"));  // the table's name, not a call
  EXPECT_FALSE(calls("CREATE TABLE t(a INT CHECK (a > 'tag(1)') /* tag(2) */, -- tag(3)\n b)", "tag"));
  EXPECT_TRUE(calls("CREATE TABLE t(a, b AS (\"Tag\" (a)) STORED)", "Tag"));
  EXPECT_TRUE(calls("CREATE TABLE t(a CHECK ([tag](a) > 0))", "tag"));
}

class db_schema : public ::testing::Test {
 protected:
  temp_dir dir;
  event_log log;
  container_host host{options_for(dir.path / "shadow", log)};
  sqlite_db db{dir.path / "test.db"};
  std::unique_ptr<connection> conn;

  void SetUp() override {
    host.load("ver", container("version_v1"));
    conn = std::make_unique<connection>(host, db);
    conn->attach("ver");
    ASSERT_EQ(exec(db, "CREATE TABLE t(x INTEGER); INSERT INTO t VALUES (1), (2), (3);"), "");
  }
};

TEST_F(db_schema, an_index_on_a_deterministic_function_refuses_the_swap) {
  ASSERT_EQ(exec(db, "CREATE INDEX t_tag ON t(tag(x))"), "");
  try {
    host.swap("ver", container("version_v2"));
    FAIL() << "swap was not refused";
  } catch (const db_error& e) {
    EXPECT_EQ(e.code(), db_errc::used_by_schema);
    EXPECT_NE(std::string(e.what()).find("index t_tag on t uses tag()"), std::string::npos) << e.what();
  }
  EXPECT_EQ(one(db, "SELECT container_version()"), "1");
  EXPECT_EQ(log.count(hotswap::modules::module_event_kind::refused), 1u);
}

TEST_F(db_schema, a_generated_column_or_check_refuses_the_swap) {
  ASSERT_EQ(exec(db, "CREATE TABLE g(x INTEGER, y INTEGER AS (tag(x)) STORED)"), "");
  EXPECT_THROW(host.swap("ver", container("version_v2")), db_error);
  ASSERT_EQ(exec(db, "DROP TABLE g; CREATE TABLE c(x INTEGER CHECK (tag(x) > 0))"), "");
  EXPECT_THROW(host.swap("ver", container("version_v2")), db_error);
}

TEST_F(db_schema, with_reindex_the_index_is_rebuilt_on_the_new_version) {
  ASSERT_EQ(exec(db, "CREATE INDEX t_tag ON t(tag(x))"), "");
  const swap_report r = host.swap("ver", container("version_v2"), {"operator", true});
  ASSERT_EQ(r.reindexed.size(), 1u);
  EXPECT_EQ(one(db, "SELECT container_version()"), "2");
  // The index now holds version 2's values: a lookup through it finds the row.
  EXPECT_EQ(one(db, "SELECT x FROM t INDEXED BY t_tag WHERE tag(x) = 22"), "2");
  EXPECT_EQ(one(db, "PRAGMA integrity_check"), "ok");
}

TEST_F(db_schema, non_deterministic_uses_do_not_block) {
  ASSERT_EQ(exec(db, "CREATE VIEW v AS SELECT tag(x) FROM t"), "");  // views store nothing
  EXPECT_NO_THROW(host.swap("ver", container("version_v2")));
}

}  // namespace
}  // namespace dbtest
