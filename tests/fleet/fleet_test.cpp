// The fleet end to end: a 3-member etcd cluster, 8 hotswap-httpd hosts with
// their agents, hotswap-fleet as a process, and the exact-counting client
// over every host. Each test is one failure the issue names; each checks
// where every host ends and what the client saw, never how long it took.
#include <signal.h>

#include "fleet.hpp"

namespace hotswap::fleet::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* good = "greeting-2.so";
constexpr const char* bad = "canary-errors.so";  // answers 500 to every 20th request
constexpr const char* bad_build = "canary-fault-1";

/// Every host answers with `build` (bounded wait).
#define EXPECT_FLEET_SERVES(build)                                                               \
  for (std::size_t i = 0; i < hosts; ++i)                                                        \
    EXPECT_TRUE(eventually([&] { return served_build(i) == (build); }, 15s))                     \
        << hosts_[i].name << " serves " << served_build(i) << "; agent log:\n"                   \
        << (hosts_[i].agent ? hosts_[i].agent->output() : std::string())


class fleet : public fleet_test {
 protected:
  /// Starts a rollout and notes when (on the client's timeline).
  std::unique_ptr<child> timed_rollout(const char* file, double window_s = 1.0) {
    rollout_at_ms_ = load_->ms_since_start();
    return rollout(file, window_s);
  }
  double seconds() const { return (load_->ms_since_start() - rollout_at_ms_) / 1000.0; }
  void record(const std::string& scenario, double secs, child& controller) {
    write_results(scenario, rollout_at_ms_, secs, controller.output());
  }
  double rollout_at_ms_ = 0;

  bool reached(int wave) {
    return eventually(
        [&] {
          const auto [state, w] = rollout_position();
          return (state == "running" && w >= wave) || (!state.empty() && state != "running");
        },
        30s);
  }
};

TEST_F(fleet, good_release_reaches_every_host) {
  start_load();
  auto c = timed_rollout(good);
  ASSERT_EQ(c->wait(60s), 0) << c->output();
  const double took = seconds();
  EXPECT_NE(c->output().find("wave 1/3: 1 hosts"), std::string::npos) << c->output();
  EXPECT_NE(c->output().find("wave 2/3: 2 hosts"), std::string::npos) << c->output();
  EXPECT_NE(c->output().find("wave 3/3: 8 hosts"), std::string::npos) << c->output();
  EXPECT_FLEET_SERVES("greeting-2");
  EXPECT_EQ(rollout_position(), (std::pair<std::string, int>{"done", 3}));
  auto status = fleet_command({"status", "web"}, "status");
  EXPECT_EQ(status->wait(10s), 0);
  EXPECT_NE(status->output().find("rollout"), std::string::npos) << status->output();
  expect_clean_load("");
  record("good", took, *c);
}

TEST_F(fleet, bad_release_stops_at_wave_one_and_rolls_back) {
  start_load(bad_build);
  auto c = timed_rollout(bad);
  ASSERT_EQ(c->wait(60s), 3) << c->output();  // 3: rolled back
  const double took = seconds();
  EXPECT_EQ(rollout_position(), (std::pair<std::string, int>{"rolled_back", 1})) << c->output();
  EXPECT_NE(c->output().find("fleet back on its version"), std::string::npos) << c->output();
  EXPECT_FLEET_SERVES("greeting-1");
  load_->stop();
  const auto timeline = load_->timeline();
  for (std::size_t i = 1; i < hosts; ++i)  // only wave 1 (h0) ever served the bad build
    for (const auto& [ms, build] : timeline[i]) EXPECT_NE(build, bad_build) << hosts_[i].name << " at " << ms << " ms";
  EXPECT_GT(load_->counts().non_2xx_from_bad, 0u) << "the bad build never answered: the gate judged nothing";
  expect_clean_load(bad_build);
  record("bad", took, *c);
}

TEST_F(fleet, etcd_member_killed_mid_rollout) {
  start_load();
  auto c = timed_rollout(good);
  ASSERT_TRUE(reached(2)) << c->output();
  etcd_->kill(0);  // the first member every client tries
  ASSERT_EQ(c->wait(60s), 0) << c->output();
  const double took = seconds();
  EXPECT_FLEET_SERVES("greeting-2");
  expect_clean_load("");
  record("etcd-member-killed", took, *c);
}

TEST_F(fleet, controller_killed_and_a_new_one_resumes) {
  start_load();
  auto first = timed_rollout(good, 1.0);
  ASSERT_TRUE(reached(2)) << first->output();
  first->signal(SIGKILL);
  EXPECT_EQ(first->wait(10s), 128 + SIGKILL);
  EXPECT_EQ(rollout_position().first, "running");
  auto second = fleet_command({"resume", "web"}, "resume");
  ASSERT_EQ(second->wait(60s), 0) << second->output();
  const double took = seconds();
  EXPECT_NE(second->output().find("resuming rollout"), std::string::npos) << second->output();
  EXPECT_FLEET_SERVES("greeting-2");
  expect_clean_load("");
  record("controller-killed", took, *second);
}

TEST_F(fleet, host_killed_leaves_and_converges_when_back) {
  start_load();
  auto c = timed_rollout(good, 1.5);
  ASSERT_TRUE(reached(2)) << c->output();
  kill_host(hosts - 1);  // in wave 3 only
  ASSERT_EQ(c->wait(60s), 0) << c->output();
  const double took = seconds();
  EXPECT_TRUE(eventually([&] { return reported_builds().count(hosts_[hosts - 1].name) == 0; }, 10s));
  start_host(hosts - 1);  // back, on its start version; the agent converges it
  EXPECT_FLEET_SERVES("greeting-2");
  expect_clean_load("");
  record("host-killed", took, *c);
}

TEST_F(fleet, partitioned_host_keeps_serving_its_version) {
  kill_host(0);  // back at once, its agent reaching etcd through a relay the test can cut
  start_host(0, /*through_relay=*/true);
  ASSERT_TRUE(eventually([&] { return reported_builds().size() == hosts; }, 20s));
  start_load();
  hosts_[0].link->cut();
  ASSERT_TRUE(eventually([&] { return reported_builds().count("h0") == 0; }, 15s)) << "h0's lease outlived the partition";
  auto c = timed_rollout(good);
  ASSERT_EQ(c->wait(60s), 0) << c->output();
  const double took = seconds();
  for (std::size_t i = 1; i < hosts; ++i) EXPECT_EQ(served_build(i), "greeting-2") << hosts_[i].name;
  EXPECT_EQ(served_build(0), "greeting-1") << "a partitioned host changed version";
  EXPECT_NE(hosts_[0].agent->output().find("etcd unreachable"), std::string::npos) << hosts_[0].agent->output();
  hosts_[0].link->heal();
  EXPECT_TRUE(eventually([&] { return served_build(0) == "greeting-2"; }, 20s)) << hosts_[0].agent->output();
  expect_clean_load("");
  record("partition", took, *c);
}

TEST_F(fleet, abort_returns_the_fleet_and_resume_finishes) {
  start_load();
  auto c = timed_rollout(good, 1.5);
  ASSERT_TRUE(reached(2)) << c->output();
  auto abort = fleet_command({"abort", "web", "--reason", "test abort"}, "abort");
  ASSERT_EQ(abort->wait(10s), 0) << abort->output();
  EXPECT_EQ(c->wait(30s), 4) << c->output();  // 4: aborted
  EXPECT_FLEET_SERVES("greeting-1");
  auto again = fleet_command({"resume", "web"}, "resume");
  ASSERT_EQ(again->wait(60s), 0) << again->output();
  const double took = seconds();
  EXPECT_FLEET_SERVES("greeting-2");
  expect_clean_load("");
  record("abort-resume", took, *again);
}

}  // namespace
}  // namespace hotswap::fleet::testing
