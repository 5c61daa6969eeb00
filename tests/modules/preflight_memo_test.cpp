// The preflight memo (preflight_memo.hpp): a pass is remembered by content,
// so swapping back and forth between known builds spawns no child, while a
// file rewritten under a known name is tried again and a broken one is still
// refused.
#include "fixture.hpp"

namespace hotswap::testing {
namespace {

class preflight_memo_test : public module_env {
 protected:
  modules::registry_options with_preflight() {
    modules::registry_options o = registry_opts();
    o.preflight = true;
    return o;
  }
  void start(modules::registry_options o) {
    mods.emplace(dom, std::move(o));
    mods->add<test_api>("ops", "calc", install("test_plugin_v1"));
  }
  std::uint64_t children() const { return mods->counters().loads.preflights; }
  std::uint64_t remembered() const { return mods->counters().loads.preflights_remembered; }

  std::optional<modules::registry> mods;
};

TEST_F(preflight_memo_test, swapping_back_to_bytes_that_passed_skips_the_child) {
  start(with_preflight());
  EXPECT_EQ(children(), 1U);  // add() ran it
  const fs::path v1 = plugins / "test_plugin_v1.so", v2 = install("test_plugin_v2");
  modules::swap_result r = mods->swap("ops", "calc", v2);
  EXPECT_FALSE(r.timing.preflight_remembered);
  EXPECT_GT(r.timing.preflight.count(), 0);
  EXPECT_EQ(children(), 2U);
  for (int i = 0; i < 4; ++i) {
    r = mods->swap("ops", "calc", i % 2 == 0 ? v1 : v2);
    EXPECT_TRUE(r.timing.preflight_remembered);
  }
  EXPECT_EQ(children(), 2U);
  EXPECT_EQ(remembered(), 4U);
  EXPECT_EQ(identify(mods->get<test_api>("calc")) >> 32, 2U);
  // The audit line says so, with every stage's time.
  const auto swapped = log.of(modules::module_event_kind::swapped);
  ASSERT_FALSE(swapped.empty());
  EXPECT_NE(swapped.back().message.find(" (remembered)"), std::string::npos) << swapped.back().message;
  EXPECT_NE(swapped.back().message.find("startup "), std::string::npos) << swapped.back().message;
}

TEST_F(preflight_memo_test, a_file_rewritten_under_a_known_name_is_tried_again) {
  start(with_preflight());
  const fs::path calc = install("test_plugin_v2", "calc.so");
  mods->swap("ops", "calc", calc);
  EXPECT_EQ(children(), 2U);
  install("test_plugin_v3", "calc.so");  // the next build, same name
  const modules::swap_result r = mods->swap("ops", "calc", calc);
  EXPECT_FALSE(r.timing.preflight_remembered);
  EXPECT_EQ(children(), 3U);
  EXPECT_EQ(remembered(), 0U);
  EXPECT_EQ(identify(mods->get<test_api>("calc")) >> 32, 3U);
}

TEST_F(preflight_memo_test, a_broken_file_under_a_name_that_passed_is_still_refused) {
  start(with_preflight());
  const fs::path calc = install("test_plugin_v2", "calc.so");
  mods->swap("ops", "calc", calc);
  const std::uint64_t loaded = mods->counters().loads.loaded;

  // Same build with one byte flipped: the seal refuses it before the memo is asked.
  auto rot = bytes_of(built_plugin("test_plugin_v2"));
  rot[rot.size() / 3] ^= std::byte{0x40};
  write_file(calc, rot);
  try {
    mods->swap("ops", "calc", calc);
    ADD_FAILURE() << "a broken file was accepted";
  } catch (const modules::module_error& e) {
    EXPECT_EQ(e.code(), modules::module_errc::seal_broken) << e.what();
  }
  // Another build that fails in the child: run (not remembered), refused, and
  // a refusal is not remembered either: the next request runs the child again.
  install("plugin_self_test_fail", "calc.so");
  for (int attempt = 0; attempt < 2; ++attempt) {
    try {
      mods->swap("ops", "calc", calc);
      ADD_FAILURE() << "a plugin failing its preflight was accepted";
    } catch (const modules::module_error& e) {
      EXPECT_EQ(e.code(), modules::module_errc::preflight_failed) << e.what();
    }
  }
  EXPECT_EQ(children(), 4U);
  EXPECT_EQ(remembered(), 0U);
  EXPECT_EQ(mods->counters().loads.loaded, loaded) << "the host itself loaded a refused candidate";
  EXPECT_EQ(identify(mods->get<test_api>("calc")) >> 32, 2U) << "the serving version must keep serving";
}

TEST_F(preflight_memo_test, without_remembered_passes_and_in_another_loader_the_child_runs_every_time) {
  modules::registry_options o = with_preflight();
  o.loader.preflight.remembered_passes = 0;
  start(o);
  const fs::path v1 = plugins / "test_plugin_v1.so", v2 = install("test_plugin_v2");
  mods->swap("ops", "calc", v2);
  mods->swap("ops", "calc", v1);
  EXPECT_EQ(children(), 3U);
  EXPECT_EQ(remembered(), 0U);

  // A loader of its own (another policy or other preflight options) remembers nothing of this one's.
  mods.reset();
  settle();
  start(with_preflight());
  EXPECT_EQ(children(), 1U);
  mods->swap("ops", "calc", v2);
  EXPECT_EQ(children(), 2U);
  mods->swap("ops", "calc", v1);
  EXPECT_EQ(remembered(), 1U);
}

TEST(preflight_memo, the_key_covers_the_bytes_the_interface_and_the_dependencies) {
  modules::plugin_file f;
  f.sha256 = std::string(64, 'a');
  const modules::interface_id iface{"hotswap.test", 1, 16};
  const std::string key = modules::detail::preflight_memo::key_of(f, {}, iface);
  modules::plugin_file other = f;
  other.sha256 = std::string(64, 'b');
  EXPECT_NE(modules::detail::preflight_memo::key_of(other, {}, iface), key);
  EXPECT_NE(modules::detail::preflight_memo::key_of(f, {}, {"hotswap.test", 2, 16}), key);
  EXPECT_NE(modules::detail::preflight_memo::key_of(f, {}, {"hotswap.test", 1, 24}), key);
  EXPECT_NE(modules::detail::preflight_memo::key_of(f, {}, {"hotswap.other", 1, 16}), key);
  modules::checked_dependency dep{"libdep.so.1", f, 1, {}, {}};
  const std::string with_dep = modules::detail::preflight_memo::key_of(f, {dep}, iface);
  EXPECT_NE(with_dep, key);
  dep.file.sha256 = std::string(64, 'c');
  EXPECT_NE(modules::detail::preflight_memo::key_of(f, {dep}, iface), with_dep);

  modules::detail::preflight_memo memo(2);
  memo.remember("one");
  memo.remember("two");
  EXPECT_TRUE(memo.passed("one"));
  memo.remember("three");  // over capacity: the oldest goes
  EXPECT_FALSE(memo.passed("one"));
  EXPECT_TRUE(memo.passed("two"));
  EXPECT_TRUE(memo.passed("three"));
  modules::detail::preflight_memo off(0);
  off.remember("one");
  EXPECT_FALSE(off.passed("one"));
}

}  // namespace
}  // namespace hotswap::testing
