// The canary (canary.hpp): keyed routing in steps, per-version health, the
// sequential verdict on simulated outcome streams with fixed seeds, manual
// promote and abort, call-level fallback and shadow runs, over real plugins.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <thread>

#include "fixture.hpp"

namespace hotswap::testing {
namespace {

using namespace std::chrono_literals;
using modules::canary_phase;
using modules::outcome;
using modules::side;

class canary_test : public module_env {
 protected:
  canary_test() : mods(dom, registry_opts()) {
    mods.add<test_api>("ops", "app", install("test_plugin_v1"));
    candidate = install("test_plugin_v2");
  }
  modules::canary& canary() { return mods.canary("app"); }
  side route(std::uint64_t key) {
    return canary().call(key, [](const modules::loaded_module&, side s) { return s; });
  }
  std::uint64_t answer(std::uint64_t key) {
    return canary().call(key, [](const modules::loaded_module& m, side) { return m.api<test_api>().identify() >> 32; });
  }

  modules::registry mods;
  fs::path candidate;
};

modules::canary_policy manual_steps() {
  modules::canary_policy p;
  p.steps_bp = {100, 500, 2500, 5000, 10000};
  return p;
}

TEST(canary_health, buckets_bound_every_latency_within_an_eighth) {
  using b = modules::latency_buckets;
  for (std::uint64_t ns : {0ULL, 1ULL, 7ULL, 8ULL, 9ULL, 15ULL, 16ULL, 1000ULL, 123456ULL, 999999999ULL, 1ULL << 39}) {
    const std::size_t i = b::index(ns);
    EXPECT_GE(b::upper(i), ns) << ns;
    if (i > 0) {
      EXPECT_LT(b::upper(i - 1), ns) << ns;  // the buckets tile the axis
    }
    EXPECT_LE(static_cast<double>(b::upper(i)), static_cast<double>(ns) * 1.125 + 1) << ns;
  }
  modules::version_health h;
  for (int i = 1; i <= 1000; ++i) h.record(i % 10 == 0 ? outcome::error : outcome::ok, std::chrono::microseconds(i));
  const modules::health_snapshot s = h.snapshot();
  EXPECT_EQ(s.ok, 900U);
  EXPECT_EQ(s.errors, 100U);
  EXPECT_GE(s.p(0.99), 990'000U);
  EXPECT_LE(s.p(0.99), 990'000U * 1.125);
}

// A 1 us handler whose fresh copy is slow on its first calls (cold caches) or
// preempted: 4% of the candidate's calls at 60 us against stable's 1% must
// not read as "p99 above 1.5x stable" (it did before min_latency_increase).
TEST(canary_verdict_unit, microsecond_jitter_is_not_a_latency_regression) {
  modules::version_health stable, candidate;
  for (int i = 0; i < 5000; ++i) stable.record(outcome::ok, 1us);
  for (int i = 0; i < 50; ++i) stable.record(outcome::ok, 60us);
  for (int i = 0; i < 480; ++i) candidate.record(outcome::ok, 1us);
  for (int i = 0; i < 20; ++i) candidate.record(outcome::ok, 60us);
  const modules::step_verdict v = modules::judge_step(stable.snapshot(), candidate.snapshot(), {});
  EXPECT_NE(v.decision, modules::step_decision::roll_back) << v.evidence();
  modules::canary_policy ratio_only;  // the rule before the floor: the same evidence rolled back
  ratio_only.min_latency_increase = {};
  EXPECT_EQ(modules::judge_step(stable.snapshot(), candidate.snapshot(), ratio_only).decision,
            modules::step_decision::roll_back);
  // The same shape 1,000 times slower is a regression: 4% of calls far above 1.5 x stable's p99.
  modules::version_health slow_stable, slow_candidate;
  for (int i = 0; i < 5000; ++i) slow_stable.record(outcome::ok, 1ms);
  for (int i = 0; i < 50; ++i) slow_stable.record(outcome::ok, 1500us);
  for (int i = 0; i < 480; ++i) slow_candidate.record(outcome::ok, 1ms);
  for (int i = 0; i < 20; ++i) slow_candidate.record(outcome::ok, 60ms);
  EXPECT_EQ(modules::judge_step(slow_stable.snapshot(), slow_candidate.snapshot(), {}).decision,
            modules::step_decision::roll_back);
}

TEST(canary_health, threads_merge_when_read) {
  modules::version_health h;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) h.record(outcome::ok, 1us);
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(h.snapshot().ok, 40000U);
}

TEST_F(canary_test, without_a_canary_every_key_is_stable) {
  EXPECT_FALSE(canary().running());
  for (std::uint64_t k = 0; k < 1000; ++k) ASSERT_EQ(route(k), side::stable);
}

TEST_F(canary_test, keys_keep_their_side_while_the_weight_grows) {
  mods.start_canary("ops", "app", candidate, manual_steps());
  std::vector<side> before(20000);
  std::size_t on = 0;
  for (std::uint64_t k = 0; k < before.size(); ++k) {
    before[k] = route(k);
    on += before[k] == side::candidate;
  }
  EXPECT_NEAR(static_cast<double>(on) / before.size(), 0.01, 0.004);
  canary().promote("ops");  // 5%
  canary().promote("ops");  // 25%
  on = 0;
  for (std::uint64_t k = 0; k < before.size(); ++k) {
    const side now = route(k);
    if (before[k] == side::candidate) {
      ASSERT_EQ(now, side::candidate) << "key " << k << " changed side";
    }
    on += now == side::candidate;
  }
  EXPECT_NEAR(static_cast<double>(on) / before.size(), 0.25, 0.02);
  for (std::uint64_t k = 0; k < 200; ++k) EXPECT_EQ(answer(k), route(k) == side::candidate ? 2U : 1U);
}

TEST_F(canary_test, manual_promote_walks_the_steps_and_publishes_the_candidate) {
  mods.start_canary("ops", "app", candidate, manual_steps());
  EXPECT_THROW(mods.start_canary("ops", "app", candidate, manual_steps()), modules::module_error);  // one at a time
  for (int i = 0; i < 5; ++i) canary().promote("ops");
  EXPECT_EQ(canary().status().phase, canary_phase::promoted);
  EXPECT_EQ(mods.module("app").current_version(), 2U);
  for (std::uint64_t k = 0; k < 100; ++k) {
    EXPECT_EQ(route(k), side::stable);
    EXPECT_EQ(answer(k), 2U);  // v2's code now serves as stable
  }
  const auto decisions = canary().history();
  ASSERT_EQ(decisions.size(), 6U);  // started, 4 steps, promoted
  EXPECT_EQ(decisions.front().what, "started");
  EXPECT_EQ(decisions.back().what, "promoted");
  EXPECT_EQ(log.count(modules::module_event_kind::canary), 1U + 6U);  // the request, then each decision
  EXPECT_THROW(canary().promote("ops"), modules::module_error);  // nothing left to promote
}

TEST_F(canary_test, abort_returns_every_key_to_stable_at_once) {
  mods.start_canary("ops", "app", candidate, manual_steps());
  for (int i = 0; i < 3; ++i) canary().promote("ops");  // 50%
  canary().abort("ops");
  EXPECT_EQ(canary().status().phase, canary_phase::aborted);
  for (std::uint64_t k = 0; k < 1000; ++k) ASSERT_EQ(answer(k), 1U);
  EXPECT_EQ(mods.module("app").current_version(), 1U);
  const auto events = log.of(modules::module_event_kind::canary);
  ASSERT_FALSE(events.empty());
  EXPECT_NE(events.back().message.find("aborted"), std::string::npos);
  EXPECT_EQ(events.back().principal, "ops");
}

TEST_F(canary_test, a_pinned_session_keeps_its_side_after_a_rollback) {
  modules::canary_policy p = manual_steps();
  p.steps_bp = {10000};
  mods.start_canary("ops", "app", candidate, p);
  auto pinned = canary().pin(dom.this_thread(), 7);
  ASSERT_EQ(pinned.on, side::candidate);
  canary().abort("ops");
  EXPECT_EQ(pinned.pin->api<test_api>().identify() >> 32, 2U);  // still loaded, still v2
  EXPECT_EQ(answer(7), 1U);                                      // new calls: stable
}

// Keyed calls load the slot's routing word, not its version word: a swap of
// stable during a canary must move the route's stable side (and, once the
// canary ends, the plain word) to the new version, keys keeping their side.
TEST_F(canary_test, a_swap_of_stable_during_a_canary_moves_its_stable_side) {
  mods.start_canary("ops", "app", candidate, manual_steps());
  for (int i = 0; i < 3; ++i) canary().promote("ops");  // 50%
  std::vector<side> before(2000);
  for (std::uint64_t k = 0; k < before.size(); ++k) before[k] = route(k);
  mods.swap("ops", "app", install("test_plugin_v3"));
  for (std::uint64_t k = 0; k < before.size(); ++k) {
    ASSERT_EQ(route(k), before[k]) << "key " << k;
    ASSERT_EQ(answer(k), before[k] == side::candidate ? 2U : 3U) << "key " << k;
    const auto fb = canary().call_with_fallback(
        dom.this_thread(), k, true, [](const modules::loaded_module& m, side) { return m.api<test_api>().identify() >> 32; },
        [](std::uint64_t) { return true; });  // every answer "fails": candidate keys fall back to the new stable
    ASSERT_EQ(fb.value, 3U) << "key " << k;
  }
  canary().abort("ops");
  mods.swap("ops", "app", install("test_plugin_v4"));
  for (std::uint64_t k = 0; k < 100; ++k) ASSERT_EQ(answer(k), 4U);
}

// Fallback: a failing candidate answer is re-run once on stable for retryable
// calls only; stable is never run twice.
TEST_F(canary_test, fallback_runs_a_retryable_failure_once_on_stable) {
  modules::canary_policy p = manual_steps();
  p.steps_bp = {10000};
  mods.start_canary("ops", "app", candidate, p);
  int stable_runs = 0, candidate_runs = 0;
  auto call = [&](bool retryable, bool candidate_fails, bool candidate_throws) {
    return canary().call_with_fallback(
        dom.this_thread(), 1, retryable,
        [&](const modules::loaded_module& m, side s) -> int {
          (s == side::stable ? stable_runs : candidate_runs)++;
          if (s == side::candidate && candidate_throws) throw std::runtime_error("at the ABI boundary");
          const int version = static_cast<int>(m.api<test_api>().identify() >> 32);
          return s == side::candidate && candidate_fails ? -version : version;
        },
        [](int answer) { return answer < 0; });
  };
  auto r = call(true, true, false);
  EXPECT_EQ(r.value, 1);
  EXPECT_TRUE(r.fell_back);
  EXPECT_EQ(r.answered, side::stable);
  EXPECT_EQ(stable_runs, 1);
  EXPECT_EQ(candidate_runs, 1);
  r = call(true, false, true);  // an exception: the same
  EXPECT_EQ(r.value, 1);
  EXPECT_TRUE(r.fell_back);
  EXPECT_EQ(stable_runs, 2);
  r = call(false, true, false);  // not retryable: the candidate's failure stands
  EXPECT_EQ(r.value, -2);
  EXPECT_FALSE(r.fell_back);
  EXPECT_EQ(stable_runs, 2);
  EXPECT_THROW(call(false, false, true), std::runtime_error);
  r = call(true, false, false);
  EXPECT_EQ(r.value, 2);
  EXPECT_EQ(r.answered, side::candidate);
  EXPECT_EQ(canary().status().candidate.fallbacks, 2U);
  canary().abort("ops");
  const int before = stable_runs;
  r = call(true, false, false);  // routed to stable: runs there once, whatever it answers
  EXPECT_EQ(stable_runs, before + 1);
}

TEST_F(canary_test, shadow_runs_need_a_declared_candidate_and_gate_the_first_step) {
  modules::canary_policy p = manual_steps();
  p.shadow_bp = 5000;
  p.shadow_samples = 50;
  p.max_shadow_mismatch = 0.1;
  try {
    mods.start_canary("ops", "app", candidate, p);  // v2 does not declare shadow support
    FAIL() << "a candidate without HOTSWAP_PLUGIN_SHADOW_SAFE was shadowed";
  } catch (const modules::module_error& e) {
    EXPECT_EQ(e.code(), modules::module_errc::bad_policy);
  }
  EXPECT_FALSE(canary().running());

  const fs::path safe = install("plugin_shadow_safe");
  mods.start_canary("ops", "app", safe, p);
  EXPECT_EQ(canary().status().phase, canary_phase::shadow);
  std::size_t shadowed = 0;
  for (std::uint64_t k = 0; k < 1000; ++k) {
    ASSERT_EQ(route(k), side::stable);  // no real traffic in the shadow phase
    if (auto shadow = canary().shadow_for(dom.this_thread(), k)) {
      ++shadowed;
      EXPECT_EQ(shadow->api<test_api>().identify() >> 32, 3U);
    }
  }
  EXPECT_NEAR(static_cast<double>(shadowed) / 1000, 0.5, 0.06);
  for (int i = 0; i < 45; ++i) canary().report_shadow(true);
  for (int i = 0; i < 4; ++i) canary().report_shadow(false, "body hash differs on /x" + std::to_string(i));
  canary().evaluate();
  EXPECT_EQ(canary().status().phase, canary_phase::shadow);  // 49 < 50 comparisons
  canary().report_shadow(true);
  canary().evaluate();
  EXPECT_EQ(canary().status().phase, canary_phase::stepping);  // 4 of 50 within the 10% budget
  EXPECT_EQ(canary().status().shadow_examples.size(), 4U);
  canary().abort("ops");

  mods.start_canary("ops", "app", safe, p);
  for (int i = 0; i < 40; ++i) canary().report_shadow(true);
  for (int i = 0; i < 10; ++i) canary().report_shadow(false, "status 500 vs 200");
  canary().evaluate();
  EXPECT_EQ(canary().status().phase, canary_phase::rolled_back);  // 20% over budget: never reached real traffic
}

// ---- the verdict on simulated outcome streams -----------------------------

struct call_model {
  double error_rate;
  double latency_scale;  // x stable's latency
};

struct run_result {
  canary_phase end;
  std::uint64_t candidate_calls;  // reported for the candidate until the decision
  std::uint64_t requests;
};

// Requests with random keys through the real canary; each outcome drawn from
// its side's model; the verdict every 200 requests (a host's tick).
run_result simulate(modules::canary& c, std::uint64_t seed, call_model stable, call_model candidate) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::exponential_distribution<double> tail(1.0 / 100.0);  // microseconds
  run_result r{canary_phase::stepping, 0, 0};
  while (c.running() && r.requests < 3'000'000) {
    const std::uint64_t key = rng();
    const side s = c.call(key, [](const modules::loaded_module&, side on) { return on; });
    const call_model& m = s == side::stable ? stable : candidate;
    const double us = (200 + tail(rng)) * m.latency_scale;
    c.report(s, u(rng) < m.error_rate ? outcome::error : outcome::ok,
             std::chrono::nanoseconds(static_cast<std::int64_t>(us * 1000)));
    r.candidate_calls += s == side::candidate;
    if (++r.requests % 200 == 0) c.evaluate();
  }
  r.end = c.status().phase;
  return r;
}

struct verdict_tally {
  int promoted = 0, rolled_back = 0;
  std::uint64_t max_candidate_calls = 0;
  std::vector<std::uint64_t> calls;
};

class canary_verdict : public canary_test {
 protected:
  verdict_tally runs(call_model stable, call_model candidate, int n = 100) {
    if (const char* e = std::getenv("CANARY_RUNS")) n = std::atoi(e);
    verdict_tally t;
    for (int seed = 1; seed <= n; ++seed) {
      mods.start_canary("ops", "app", candidate_file, modules::canary_policy{});
      const run_result r = simulate(canary(), static_cast<std::uint64_t>(seed), stable, candidate);
      t.promoted += r.end == canary_phase::promoted;
      t.rolled_back += r.end == canary_phase::rolled_back;
      if (std::getenv("CANARY_DEBUG") && r.end == canary_phase::rolled_back)
        std::printf("seed %d: %s\n", seed, canary().history().back().evidence.c_str());
      t.max_candidate_calls = std::max(t.max_candidate_calls, r.candidate_calls);
      t.calls.push_back(r.candidate_calls);
      settle();  // each run's drained versions unload before the next
    }
    std::sort(t.calls.begin(), t.calls.end());
    return t;
  }
  fs::path candidate_file = candidate;
};

constexpr call_model stable_model{0.01, 1.0};

void print(const char* label, int decided, const verdict_tally& t) {
  std::printf("%s: %d/%zu, candidate calls median %llu max %llu\n", label, decided, t.calls.size(),
              static_cast<unsigned long long>(t.calls[t.calls.size() / 2]),
              static_cast<unsigned long long>(t.max_candidate_calls));
}

TEST_F(canary_verdict, a_good_candidate_is_promoted_in_at_least_99_of_100_runs) {
  const verdict_tally t = runs(stable_model, {0.01, 1.0});
  print("good: promoted", t.promoted, t);
  EXPECT_GE(t.promoted, 99);
}

// The stated bound: a regression of the tolerated size (+2 points over 1%) or a
// p99 twice stable's is rolled back within 2,500 candidate calls in 99 of 100
// runs (400 seeded runs measured: +2 points median 612, max 2,123; p99 x2
// median 122, max 816; README).
constexpr std::uint64_t rollback_bound = 2500;

TEST_F(canary_verdict, two_points_more_errors_roll_back_in_at_least_99_of_100_runs) {
  const verdict_tally t = runs(stable_model, {0.03, 1.0});
  print("+2 points: rolled back", t.rolled_back, t);
  EXPECT_GE(t.rolled_back, 99);
  EXPECT_LE(t.calls[t.calls.size() * 99 / 100 - 1], rollback_bound);  // 99 of 100 runs
}

TEST_F(canary_verdict, a_p99_twice_stables_rolls_back_in_at_least_99_of_100_runs) {
  const verdict_tally t = runs(stable_model, {0.01, 2.0});
  print("p99 x2: rolled back", t.rolled_back, t);
  EXPECT_GE(t.rolled_back, 99);
  EXPECT_LE(t.calls[t.calls.size() * 99 / 100 - 1], rollback_bound);  // 99 of 100 runs
}

TEST_F(canary_verdict, a_candidate_whose_every_call_fails_is_rolled_back_within_a_few_calls) {
  const verdict_tally t = runs(stable_model, {1.0, 1.0}, 20);
  EXPECT_EQ(t.rolled_back, 20);
  // Each error adds ln(p1/p0) = ln(3) to the statistic: 7 errors cross ln(990); the tick every
  // 200 requests at 1% adds at most a few calls.
  EXPECT_LE(t.max_candidate_calls, 20U);
  const auto events = log.of(modules::module_event_kind::canary);
  ASSERT_FALSE(events.empty());
  EXPECT_NE(events.back().message.find("rolled_back"), std::string::npos);
  EXPECT_NE(events.back().message.find("errors llr="), std::string::npos);  // the evidence is in the line
}

}  // namespace
}  // namespace hotswap::testing
