// hotswap_pg: errors are SQL errors with SQLSTATEs; refused swaps change nothing; failed
// startups keep a session on its old version with a WARNING; swapping needs the grant.
#include <fstream>
#include <string>
#include <vector>

#include "pg_fixture.hpp"

namespace hotswap::pg::test {
namespace {

using pg_refusal = pg_suite;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST_F(pg_refusal, a_container_error_is_an_sql_error_and_the_dispatcher_stays_usable) {
  session admin(conninfo()), a(conninfo());
  swap(admin, "pg_version_v1.so");
  const sql_error e = a.error("SELECT fail('boom')");
  EXPECT_EQ(e.sqlstate, "HS001");
  EXPECT_TRUE(contains(e.message, "container version 1 failed: boom")) << e.message;
  EXPECT_TRUE(contains(e.message, "hotswap container \"ver\"")) << "error context: " << e.message;
  EXPECT_EQ(a.value("SELECT container_version()"), "1");
  // Caught inside the transaction (a subtransaction rolls back the longjmp'ed call).
  a.exec("BEGIN");
  a.exec("DO $$ BEGIN PERFORM fail('x'); EXCEPTION WHEN SQLSTATE 'HS001' THEN NULL; END $$");
  EXPECT_EQ(a.value("SELECT add_one(41)"), "42");
  a.exec("COMMIT");
  swap(admin, "pg_version_v2.so");
  EXPECT_EQ(a.value("SELECT container_version()"), "2");
}

TEST_F(pg_refusal, a_failed_startup_keeps_the_session_on_its_version_with_a_warning) {
  session admin(conninfo()), a(conninfo());
  swap(admin, "pg_version_v1.so");
  a.value("SELECT session_calls()");
  a.take_notices();
  for (const char* file : {"pg_version_startup_fails.so", "pg_version_startup_raises.so"}) {
    const std::string v = swap(admin, file);
    EXPECT_EQ(a.value("SELECT container_version()"), "1") << file;
    const std::vector<std::string> notices = a.take_notices();
    ASSERT_EQ(notices.size(), 1u) << file;
    EXPECT_TRUE(contains(notices[0], "WARNING")) << notices[0];
    EXPECT_TRUE(contains(notices[0], "version " + v + " refused")) << notices[0];
    EXPECT_TRUE(contains(notices[0], "refuses to start") || contains(notices[0], "raises in session_startup"))
        << notices[0];
    EXPECT_EQ(admin.value("SELECT refused FROM hotswap.versions WHERE pid = " + std::to_string(a.backend_pid())), v);
    EXPECT_TRUE(a.take_notices().empty());
    EXPECT_EQ(a.value("SELECT container_version()"), "1") << "a refused version is not tried again";
    EXPECT_TRUE(a.take_notices().empty());
  }
  EXPECT_EQ(a.value("SELECT session_calls()"), "2") << "the old version was started again with its saved state";
  swap(admin, "pg_version_v2.so");
  EXPECT_EQ(a.value("SELECT session_calls() || ':' || container_version()"), "3:2");
}

TEST_F(pg_refusal, refused_swaps_are_errors_and_change_nothing) {
  session admin(conninfo()), a(conninfo());
  swap(admin, "pg_version_v1.so");
  EXPECT_EQ(a.value("SELECT container_version()"), "1");
  const std::string before = admin.value("SELECT version FROM hotswap.containers WHERE container = 'ver'");
  // Outside the allowed directory (an existing, well-formed container).
  const fs::path outside = server().root() / "outside";
  fs::create_directories(outside);
  fs::copy_file(server().containers() / "pg_version_v2.so", outside / "v2.so", fs::copy_options::overwrite_existing);
  {
    std::ofstream junk(server().containers() / "junk.so");
    junk << "not an ELF file";
  }
  struct refusal {
    std::string file, sqlstate, says;
  };
  for (const refusal& r : {refusal{(outside / "v2.so").string(), "42501", "outside"},
                           refusal{"pg_version_wrong_interface.so", "22023", "interface mismatch"},
                           refusal{"junk.so", "22023", "ELF"},
                           refusal{"pg_version_crashes.so", "38000", "SIGABRT"},
                           refusal{"missing.so", "58P01", "not found"}}) {
    const sql_error e = admin.error("SELECT hotswap.swap('ver', '" + r.file + "')");
    EXPECT_EQ(e.sqlstate, r.sqlstate) << r.file << ": " << e.message;
    EXPECT_TRUE(contains(e.message, r.says)) << r.file << ": " << e.message;
  }
  admin.exec("BEGIN READ ONLY");  // the history row could not be written after the publish
  const sql_error read_only = admin.error("SELECT hotswap.swap('ver', 'pg_version_v2.so')");
  EXPECT_EQ(read_only.sqlstate, "25006") << read_only.message;
  admin.exec("ROLLBACK");
  EXPECT_EQ(admin.value("SELECT version FROM hotswap.containers WHERE container = 'ver'"), before);
  EXPECT_EQ(a.value("SELECT container_version()"), "1");
  session fresh(conninfo());  // the server is up and serving
  EXPECT_EQ(fresh.value("SELECT container_version()"), "1");
}

TEST_F(pg_refusal, a_backend_loads_only_the_bytes_the_swap_published) {
  session admin(conninfo()), a(conninfo());
  swap(admin, "pg_version_v1.so");
  EXPECT_EQ(a.value("SELECT container_version()"), "1");
  const fs::path work = server().containers() / "work.so";
  auto deploy = [&](const char* build) {  // overwritten in place: backends map private copies
    fs::copy_file(server().containers() / build, work, fs::copy_options::overwrite_existing);
    ::chmod(work.c_str(), 0644);
  };
  deploy("pg_version_v2.so");
  const std::string v = swap(admin, "work.so");
  deploy("pg_version_v3.so");  // before `a` moved
  a.take_notices();
  EXPECT_EQ(a.value("SELECT container_version()"), "1");
  const std::vector<std::string> notices = a.take_notices();
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_TRUE(contains(notices[0], "version " + v + " refused")) << notices[0];
  EXPECT_TRUE(contains(notices[0], "the file changed since the swap")) << notices[0];
  EXPECT_TRUE(contains(notices[0], "hash mismatch")) << "refused by the loader, before its code ran: " << notices[0];
  swap(admin, "work.so");
  EXPECT_EQ(a.value("SELECT container_version()"), "3");
}

TEST_F(pg_refusal, swapping_needs_the_grant_and_the_history_names_the_role) {
  session admin(conninfo());
  admin.exec("DO $$ BEGIN CREATE ROLE app LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
  session app(conninfo("app"));
  EXPECT_NE(app.value("SELECT container_version()"), "") << "calling container functions needs no grant";
  const sql_error e = app.error("SELECT hotswap.swap('ver', 'pg_version_v2.so')");
  EXPECT_EQ(e.sqlstate, "42501");
  EXPECT_TRUE(contains(e.message, "permission denied for function swap")) << e.message;
  admin.exec("GRANT EXECUTE ON FUNCTION hotswap.swap(text, text, integer) TO app");
  const std::string v = app.value("SELECT version FROM hotswap.swap('ver', 'pg_version_v2.so')");
  EXPECT_EQ(admin.value("SELECT role FROM hotswap.swap_history WHERE version = " + v + " AND container = 'ver'"), "app");
  admin.exec("REVOKE EXECUTE ON FUNCTION hotswap.swap(text, text, integer) FROM app");
}

}  // namespace
}  // namespace hotswap::pg::test
