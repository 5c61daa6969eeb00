// The fleet's parts alone: the etcd client against one real etcd member
// (txn conflicts, leases, watch, fail-over), the wave plan, the artifact
// store's hash check, and the records' errors naming their key.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <hotswap/fleet/artifact_store.hpp>
#include <hotswap/fleet/controller.hpp>
#include <hotswap/fleet/etcd_client.hpp>
#include <hotswap/fleet/records.hpp>
#include <mutex>

#include "processes.hpp"

namespace hotswap::fleet::testing {
namespace {

using namespace std::chrono_literals;

class etcd_one : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access(HOTSWAP_ETCD, X_OK) != 0) GTEST_SKIP() << HOTSWAP_ETCD << " is missing (scripts/setup.sh installs etcd-server)";
    dir_ = fs::temp_directory_path() / ("hotswap-etcd-test-" + std::to_string(::getpid()) + "-" + std::to_string(free_port()));
    fs::create_directories(dir_);
    etcd_ = std::make_unique<etcd_cluster>(dir_, 1);
    ASSERT_TRUE(etcd_->wait_ready(30s));
    client_ = std::make_unique<etcd_client>(parse_endpoints(etcd_->endpoints()), 2s);
  }
  void TearDown() override {
    client_.reset();
    etcd_.reset();
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
  fs::path dir_;
  std::unique_ptr<etcd_cluster> etcd_;
  std::unique_ptr<etcd_client> client_;
};

TEST_F(etcd_one, only_one_of_two_writers_comparing_the_same_revision_wins) {
  client_->put("/t/rollout", "wave 1");
  const key_value read = client_->get("/t/rollout").kvs.at(0);
  // Both "controllers" read the same revision; each tries to advance.
  const txn_result first = client_->txn({{"/t/rollout", compare::target::mod, read.mod_revision}}, {operation::put("/t/rollout", "wave 2 by A")});
  const txn_result second = client_->txn({{"/t/rollout", compare::target::mod, read.mod_revision}}, {operation::put("/t/rollout", "wave 2 by B")});
  EXPECT_TRUE(first.succeeded);
  EXPECT_FALSE(second.succeeded);
  EXPECT_EQ(client_->get("/t/rollout").kvs.at(0).value, "wave 2 by A");
  // create_revision 0: "only if absent", the controller key's guard.
  EXPECT_TRUE(client_->txn({{"/t/owner", compare::target::create, 0}}, {operation::put("/t/owner", "A")}).succeeded);
  EXPECT_FALSE(client_->txn({{"/t/owner", compare::target::create, 0}}, {operation::put("/t/owner", "B")}).succeeded);
}

TEST_F(etcd_one, prefix_reads_and_deletes_and_binary_values) {
  const std::string binary("a\0b\xff", 4);
  client_->put("/t/p/1", binary);
  client_->put("/t/p/2", "two");
  client_->put("/t/q", "other");
  const range_result r = client_->get_prefix("/t/p/");
  ASSERT_EQ(r.kvs.size(), 2u);
  EXPECT_EQ(r.find("/t/p/1")->value, binary);
  EXPECT_TRUE(client_->txn({}, {operation::remove_prefix("/t/p/")}).succeeded);
  EXPECT_TRUE(client_->get_prefix("/t/p/").kvs.empty());
  EXPECT_EQ(client_->get("/t/q").kvs.size(), 1u);
}

TEST_F(etcd_one, a_lease_keeps_its_key_until_revoked) {
  const std::int64_t lease = client_->lease_grant(5);
  ASSERT_NE(lease, 0);
  client_->put("/t/host", "up", lease);
  EXPECT_GT(client_->lease_keepalive(lease), 0);
  EXPECT_EQ(client_->get("/t/host").kvs.at(0).lease, lease);
  client_->lease_revoke(lease);
  EXPECT_TRUE(client_->get("/t/host").kvs.empty());
  EXPECT_EQ(client_->lease_keepalive(lease), 0) << "a revoked lease must read as expired";
}

TEST_F(etcd_one, a_watch_sees_puts_and_deletes_in_order) {
  std::mutex m;
  std::vector<std::string> seen;
  std::atomic<bool> go{true};
  std::thread watcher([&] {
    try {
      client_->watch("/t/w/", true, 0,
                     [&](const std::vector<watch_event>& events, std::int64_t) {
                       std::lock_guard lock(m);
                       for (const auto& e : events) seen.push_back((e.deleted ? "-" : "+") + e.kv.key + "=" + e.kv.value);
                     },
                     [&] { return go.load(std::memory_order_relaxed); });  // a flag; no partner
    } catch (const etcd_error& e) {
      ADD_FAILURE() << e.what();
    }
  });
  // The watch starts at the revision current when it is created: write until it sees the first key.
  ASSERT_TRUE(eventually(
      [&] {
        client_->put("/t/w/probe", "x");
        std::lock_guard lock(m);
        return !seen.empty();
      },
      10s));
  client_->put("/t/w/a", "1");
  client_->txn({}, {operation::remove("/t/w/a")});
  client_->put("/t/other", "not watched");
  EXPECT_TRUE(eventually(
      [&] {
        std::lock_guard lock(m);
        return !seen.empty() && seen.back() == "-/t/w/a=";
      },
      10s));
  go.store(false, std::memory_order_relaxed);  // a flag; no partner
  watcher.join();
  std::lock_guard lock(m);
  ASSERT_GE(seen.size(), 3u);
  EXPECT_EQ(seen[seen.size() - 2], "+/t/w/a=1");
  for (const auto& s : seen) EXPECT_EQ(s.find("/t/other"), std::string::npos);
}

TEST_F(etcd_one, a_call_fails_over_from_a_dead_member_and_names_every_failure) {
  const std::string dead = "127.0.0.1:" + std::to_string(free_port());
  etcd_client both(parse_endpoints(dead + "," + etcd_->endpoints()), 1s);
  EXPECT_GT(both.put("/t/failover", "ok"), 0);
  const std::string dead2 = "127.0.0.1:" + std::to_string(free_port());
  etcd_client none(parse_endpoints(dead + "," + dead2), 500ms);
  try {
    none.get("/t/failover");
    FAIL() << "no member answered, yet the call succeeded";
  } catch (const etcd_error& e) {
    EXPECT_NE(std::string(e.what()).find(dead), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(dead2), std::string::npos) << e.what();
  }
}

TEST(fleet_parts, waves_are_cumulative_and_round_up) {
  const std::vector<std::string> hosts{"h3", "h1", "h0", "h2", "h4", "h5", "h6", "h7"};
  const auto plan = plan_waves({"1", "25%", "100%"}, hosts);
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_EQ(plan[0], (std::vector<std::string>{"h0"}));
  EXPECT_EQ(plan[1], (std::vector<std::string>{"h0", "h1"}));
  EXPECT_EQ(plan[2].size(), 8u);
  EXPECT_EQ(plan_waves({"10%", "30%", "100%"}, {"a", "b", "c"}).size(), 2u) << "10% and 30% of 3 are both 1 host";
  EXPECT_EQ(plan_waves({"5"}, {"a", "b"}).back().size(), 2u);
  for (const char* bad : {"0", "abc", "150%", "-1", "25%%", ""})
    EXPECT_THROW(plan_waves({bad}, hosts), std::invalid_argument) << bad;
}

TEST(fleet_parts, the_store_refuses_a_corrupt_or_missing_artifact) {
  const fs::path dir = fs::temp_directory_path() / ("hotswap-store-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "release.so") << "release bytes";
  directory_store store(dir / "store");
  const std::string sha = store.put(dir / "release.so");
  EXPECT_EQ(sha, sha256_file(dir / "release.so"));
  store.fetch(sha, dir / "copy.so");
  EXPECT_EQ(sha256_file(dir / "copy.so"), sha);
  fs::permissions(store.path_of(sha), fs::perms::owner_all);
  std::ofstream(store.path_of(sha), std::ios::app) << "x";  // a flipped store
  try {
    store.fetch(sha, dir / "copy2.so");
    ADD_FAILURE() << "a corrupt artifact was fetched";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("corrupt"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "copy2.so"));
  EXPECT_THROW(store.fetch(std::string(64, 'a'), dir / "copy3.so"), std::runtime_error);
  fs::remove_all(dir);
}

TEST(fleet_parts, a_bad_record_names_its_key) {
  try {
    decode_desired("{\"module\":\"greeting\"}", "/hotswap/fleet/web/desired");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/hotswap/fleet/web/desired"), std::string::npos) << e.what();
  }
  EXPECT_THROW(check_name("host", "a/b"), std::invalid_argument);
  const desired_state d{"greeting", "greeting-2.so", std::string(64, 'b'), "canary", "r1"};
  EXPECT_EQ(decode_desired(encode(d), "k"), d);
}

}  // namespace
}  // namespace hotswap::fleet::testing
