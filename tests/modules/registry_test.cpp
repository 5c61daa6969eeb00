// The registry: history, rollback, status, counters, policies and the audit log.
#include <chrono>

#include "fixture.hpp"

struct other_api {
  void (*f)(void);
};
HOTSWAP_DECLARE_INTERFACE(other_api, "hotswap.other", 1)

namespace hotswap::testing {
namespace {

using namespace std::chrono_literals;

class registry_test : public module_env {};

TEST_F(registry_test, swaps_rollback_and_audit_log) {
  modules::registry mods(dom, registry_opts());
  const fs::path calc = plugins / "calc.so";  // one path, overwritten by each upload
  write_file(calc, bytes_of(built_plugin("test_plugin_v1")));
  EXPECT_EQ(mods.add<test_api>("ops", "calc", calc), 1U);
  write_file(calc, bytes_of(built_plugin("test_plugin_v2")));
  EXPECT_EQ(mods.swap("ops", "calc", calc).version, 2U);
  write_file(calc, bytes_of(built_plugin("test_plugin_v3")));
  EXPECT_EQ(mods.swap("ops", "calc", calc).version, 3U);
  write_file(calc, bytes_of(built_plugin("test_plugin_v4")));  // on disk now; never loaded

  const modules::swap_result back = mods.rollback("ops", "calc", 1);
  EXPECT_EQ(back.version, 4U);
  EXPECT_EQ(identify(mods.get<test_api>("calc")), id_of(1, 3));  // version 1's code, state carried forward

  const auto swapped = log.of(modules::module_event_kind::swapped);
  ASSERT_EQ(swapped.size(), 3U);
  EXPECT_EQ(swapped[1].principal, "ops");
  EXPECT_EQ(swapped[1].module, "calc");
  EXPECT_EQ(swapped[1].from_version, 1U);
  EXPECT_EQ(swapped[1].to_version, 2U);
  EXPECT_EQ(swapped[1].from_build, "v1");
  EXPECT_EQ(swapped[1].to_build, "v2");
  EXPECT_NE(swapped[1].message.find("sha256 "), std::string::npos);
  const auto rolled = log.of(modules::module_event_kind::rolled_back);
  ASSERT_EQ(rolled.size(), 1U);
  EXPECT_EQ(rolled[0].from_version, 3U);
  EXPECT_EQ(rolled[0].to_version, 4U);
  EXPECT_EQ(rolled[0].to_build, "v1");
  EXPECT_NE(rolled[0].message.find("rollback to version 1"), std::string::npos) << rolled[0].message;

  for (std::uint64_t v : {1U, 2U, 3U}) ASSERT_TRUE(mods.wait_drained("calc", v, 10s)) << v;
  const auto status = mods.status("calc");
  ASSERT_EQ(status.size(), 4U);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(status[i].state, modules::version_state::unloaded) << i;
    EXPECT_GT(status[i].drain_time.count(), 0) << i;
  }
  EXPECT_EQ(status[3].state, modules::version_state::serving);
  EXPECT_EQ(status[3].id.sha256, status[0].id.sha256);

  const modules::registry_counters c = mods.counters();
  EXPECT_EQ(c.swaps, 3U);
  EXPECT_EQ(c.rollbacks, 1U);
  EXPECT_EQ(c.refusals, 0U);
  EXPECT_EQ(c.loads.unloaded, 3U);
  EXPECT_GT(c.loads.drain_ns_total, 0U);
  EXPECT_GT(c.loads.drain_ns_max, 0U);
  EXPECT_LE(c.loads.drain_ns_max, c.loads.drain_ns_total);

  try {
    mods.rollback("ops", "calc", 99);
    ADD_FAILURE() << "rollback to a version never published";
  } catch (const modules::module_error& e) {
    EXPECT_EQ(e.code(), modules::module_errc::unknown_version) << e.what();
  }
  EXPECT_EQ(mods.counters().refusals, 1U);
  EXPECT_EQ(log.count(modules::module_event_kind::refused), 1U);
}

TEST_F(registry_test, history_keeps_the_last_n_versions) {
  modules::registry_options o = registry_opts();
  o.history = 2;
  modules::registry mods(dom, o);
  mods.add<test_api>("ops", "calc", install("test_plugin_v1"));
  mods.swap("ops", "calc", install("test_plugin_v2"));
  mods.swap("ops", "calc", install("test_plugin_v3"));
  EXPECT_THROW(mods.rollback("ops", "calc", 1), modules::module_error);
  EXPECT_EQ(mods.rollback("ops", "calc", 2).version, 4U);
  EXPECT_EQ(identify(mods.get<test_api>("calc")), id_of(2, 3));
}

TEST_F(registry_test, policies_switch_at_run_time) {
  modules::registry mods(dom, registry_opts());
  mods.add<test_api>("ops", "calc", install("test_plugin_v1"));
  auto id = [](const modules::module_session<test_api>& s) { return s.call([](const test_api& a) { return a.identify(); }); };

  EXPECT_EQ(mods.policy("calc"), call_policy::per_call);
  auto newest = mods.open_session<test_api>("calc");
  mods.set_policy("calc", call_policy::pinned);
  auto pinned = mods.open_session<test_api>("calc");
  EXPECT_EQ(pinned.policy(), call_policy::pinned);
  EXPECT_EQ(pinned.pinned_version(), 1U);

  mods.swap("ops", "calc", install("test_plugin_v2"));
  EXPECT_EQ(id(newest), id_of(2, 1));  // per call: the newest
  EXPECT_EQ(id(pinned), id_of(1, 0));  // pinned: the session's version to its end
  auto pinned_later = mods.open_session<test_api>("calc");
  EXPECT_EQ(id(pinned_later), id_of(2, 1));

  mods.set_policy("calc", call_policy::per_call);
  mods.swap("ops", "calc", install("test_plugin_v3"));
  EXPECT_EQ(id(mods.open_session<test_api>("calc")), id_of(3, 2));
  EXPECT_EQ(id(pinned), id_of(1, 0));
  EXPECT_EQ(id(pinned_later), id_of(2, 1));

  const auto status = mods.status("calc");
  ASSERT_EQ(status.size(), 3U);
  EXPECT_EQ(status[0].pins, 1U);
  EXPECT_EQ(status[1].pins, 1U);
  EXPECT_EQ(status[2].pins, 0U);
}

TEST_F(registry_test, interface_is_checked_when_a_view_is_taken) {
  modules::registry mods(dom, registry_opts());
  mods.add<test_api>("ops", "calc", install("test_plugin_v1"));
  EXPECT_NO_THROW(mods.get<test_api>("calc"));
  try {
    mods.get<other_api>("calc");
    ADD_FAILURE() << "a view of another interface must be refused";
  } catch (const modules::module_error& e) {
    EXPECT_EQ(e.code(), modules::module_errc::interface_mismatch) << e.what();
  }
}

}  // namespace
}  // namespace hotswap::testing
