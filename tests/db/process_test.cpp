// Two processes on one database file, and what a swap reports about its connections.
//
// This test process and a db_process child each run a container host of their
// own over the same WAL file. When one swaps and rebuilds an index that uses
// tag(), the other, still on the old build, must refuse that index (reads by
// it and writes through it) with an SQL error until it moves to the new build.
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <thread>

#include "db_fixture.hpp"

extern char** environ;

namespace dbtest {
namespace {

/// The child process: one command line in, one result line out (bounded waits).
class child_process {
 public:
  child_process(const fs::path& database, const fs::path& container, const fs::path& shadow) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    const std::string args[] = {HOTSWAP_DB_PROCESS, database.string(), container.string(), shadow.string()};
    char* argv[] = {const_cast<char*>(args[0].c_str()), const_cast<char*>(args[1].c_str()),
                    const_cast<char*>(args[2].c_str()), const_cast<char*>(args[3].c_str()), nullptr};
    const int rc = ::posix_spawn(&pid_, HOTSWAP_DB_PROCESS, &actions, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(in[0]);
    ::close(out[1]);
    to_ = in[1];
    from_ = out[0];
    if (rc != 0) throw std::runtime_error("posix_spawn " HOTSWAP_DB_PROCESS);
  }
  ~child_process() {
    ::close(to_);  // end of input: the child finalizes and exits
    ::close(from_);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }

  /// The next line the child prints ("" if it printed nothing within 60 s or exited).
  std::string line() {
    for (;;) {
      if (const auto nl = buffer_.find('\n'); nl != std::string::npos) {
        std::string out = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return out;
      }
      pollfd p{from_, POLLIN, 0};
      if (::poll(&p, 1, 60000) <= 0) return {};
      char chunk[512];
      const ssize_t n = ::read(from_, chunk, sizeof chunk);
      if (n <= 0) return {};
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }
  std::string command(const std::string& text) {
    const std::string l = text + "\n";
    if (::write(to_, l.data(), l.size()) != static_cast<ssize_t>(l.size())) return "error: write to child failed";
    return line();
  }

 private:
  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
  std::string buffer_;
};

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(db_across_processes, a_process_on_another_build_refuses_a_rebuilt_index_until_it_moves) {
  temp_dir dir;
  event_log log;
  container_host host(options_for(dir.path / "shadow", log));
  host.load("ver", container("version_v1"));
  const fs::path file = dir.path / "shared.db";
  sqlite_db db(file);
  ASSERT_EQ(one(db, "PRAGMA journal_mode=WAL"), "wal");
  connection conn(host, db);
  conn.attach("ver");
  ASSERT_EQ(exec(db, "CREATE TABLE t(x INTEGER); INSERT INTO t VALUES (1), (2), (3); CREATE INDEX t_tag ON t(tag(x))"), "");

  // The other process, on version 1 like us; its lookup statement stays prepared.
  child_process other(file, container("version_v1"), dir.path / "shadow-child");
  ASSERT_EQ(other.line(), "ready");
  const std::string lookup_v1 = "sql SELECT x FROM t WHERE tag(x) = 21";
  ASSERT_EQ(other.command(lookup_v1), "ok 2");

  // We move to version 2 and rebuild the index on it.
  ASSERT_EQ(host.swap("ver", container("version_v2"), {"operator", true}).reindexed.size(), 1u);
  EXPECT_EQ(one(db, "SELECT build FROM hotswap_index_builds WHERE index_name = 't_tag'"), "2.0.0");
  EXPECT_EQ(one(db, "SELECT x FROM t INDEXED BY t_tag WHERE tag(x) = 22"), "2");

  // Version 1 over version 2's index: its key 21 is not there, so a lookup would find nothing and
  // an insert would add an entry the index cannot find again. Both are refused instead.
  const std::string read = other.command(lookup_v1);
  EXPECT_TRUE(contains(read, "error not authorized to use function: tag")) << read;
  const std::string write = other.command("sql INSERT INTO t VALUES (4)");
  EXPECT_TRUE(contains(write, "error tag(): index t_tag on t in ")) << write;
  EXPECT_TRUE(contains(write, "was built by ver 2.0.0 (sha256 ")) << write;
  EXPECT_TRUE(contains(write, "this connection runs ver version 1 (1.0.0)")) << write;
  EXPECT_EQ(one(db, "PRAGMA integrity_check"), "ok");
  EXPECT_EQ(one(db, "SELECT count(*) FROM t"), "3");

  // Once it moves to the recorded build, it uses the index again.
  EXPECT_TRUE(contains(other.command("swap " + container("version_v2").string()), "ok version 2"));
  EXPECT_EQ(other.command("sql SELECT x FROM t WHERE tag(x) = 22"), "ok 2");
  EXPECT_EQ(other.command("sql INSERT INTO t VALUES (4)"), "ok ");
  EXPECT_EQ(one(db, "SELECT x FROM t INDEXED BY t_tag WHERE tag(x) = 42"), "4");
  EXPECT_EQ(one(db, "PRAGMA integrity_check"), "ok");
}

// Connections on their own threads, each stepping statements; the swap waits for them.
TEST(db_swap_report, counts_the_connections_that_moved_and_those_that_refused) {
  constexpr int connections = 3;
  temp_dir dir;
  event_log log;
  container_host host(options_for(dir.path / "shadow", log));
  host.load("ver", container("version_v1"));
  const fs::path file = dir.path / "report.db";
  { sqlite_db setup(file); ASSERT_EQ(one(setup, "PRAGMA journal_mode=WAL"), "wal"); }
  std::atomic<int> ready{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < connections; ++i)
    threads.emplace_back([&] {
      sqlite_db db(file);
      connection conn(host, db);
      conn.attach("ver");
      ready.fetch_add(1);
      // Bounded: at most 60 s of statements, one per millisecond.
      for (int n = 0; n < 60000 && !stop.load(); ++n) {
        one(db, "SELECT container_version()");
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
  while (ready.load() < connections) std::this_thread::sleep_for(std::chrono::milliseconds(1));

  swap_options wait;
  wait.wait_for_connections = std::chrono::seconds(60);
  const swap_report refused = host.swap("ver", container("version_startup_fails"), wait);
  EXPECT_EQ(refused.connections.connections, 3u);
  EXPECT_EQ(refused.connections.moved, 0u);
  EXPECT_EQ(refused.connections.refused, 3u);
  EXPECT_TRUE(contains(refused.connections.first_refusal, "refuses this connection")) << refused.connections.describe();
  EXPECT_TRUE(contains(refused.connections.describe(), "0 of 3 connections moved, 3 refused")) << refused.connections.describe();

  const swap_report moved = host.swap("ver", container("version_v2"), wait);
  EXPECT_EQ(moved.connections.moved, 3u);
  EXPECT_EQ(moved.connections.refused, 0u);
  EXPECT_EQ(host.moves("ver", refused.version).refused, 3u);  // still readable afterwards
  stop = true;
  for (auto& t : threads) t.join();
}

}  // namespace
}  // namespace dbtest
