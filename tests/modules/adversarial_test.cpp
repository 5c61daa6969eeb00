// Adversarial plugins and uploads (issue #9): a hostile, broken or half-written
// plugin never takes the host down, never bypasses the policy, never stalls
// other modules, and the audit trail says what happened. Every case shows the
// refusal (or the report) and that the serving version still serves. Cases
// shaped like a crash run in a process of their own (IN_OWN_PROCESS), so a
// regression fails one test instead of killing the suite.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "adversarial.hpp"

namespace hotswap::testing {
namespace {

using namespace std::chrono_literals;

// ---- 1. half-written uploads ---------------------------------------------------

class half_written : public adversarial, public ::testing::WithParamInterface<modules::shadow_mode> {};

TEST_P(half_written, same_size_mix_of_two_builds_is_refused_by_the_seal) {
  start(GetParam());
  const auto v1 = bytes_of(built_plugin("test_plugin_v1")), v2 = bytes_of(built_plugin("test_plugin_v2"));
  ASSERT_EQ(v1.size(), v2.size()) << "the two builds must have the same size for this case";
  // Cut right after each run of differing bytes: the result is neither build.
  std::vector<std::size_t> cuts;
  for (std::size_t i = 0; i + 1 < v1.size(); ++i)
    if (v1[i] != v2[i] && v1[i + 1] == v2[i + 1]) cuts.push_back(i + 1);
  ASSERT_GE(cuts.size(), 2U);
  cuts.pop_back();  // after the last difference the mix is v2 itself
  for (std::size_t cut : cuts) {
    const auto mix = caught_half_way(v2, v1, cut);
    ASSERT_NE(mix, v1);
    ASSERT_NE(mix, v2);
    expect_refused_swap(write_plugin("calc.so", mix), modules::module_errc::seal_broken, "do not match the seal");
  }
}

TEST_P(half_written, flipped_byte_is_refused_by_the_seal) {
  start(GetParam());
  auto v2 = bytes_of(built_plugin("test_plugin_v2"));
  v2[v2.size() / 3] ^= std::byte{0x40};
  expect_refused_swap(write_plugin("rot.so", v2), modules::module_errc::seal_broken, "seal broken");
}

INSTANTIATE_TEST_SUITE_P(modes, half_written,
                         ::testing::Values(modules::shadow_mode::file, modules::shadow_mode::memory, modules::shadow_mode::in_place));

TEST_F(adversarial, smaller_build_over_a_larger_one_is_refused_by_the_seal) {
  start();
  const auto small = bytes_of(built_plugin("test_plugin_v1")), large = bytes_of(built_plugin("plugin_padded"));
  ASSERT_LT(small.size(), large.size());
  expect_refused_swap(write_plugin("calc.so", caught_half_way(small, large, small.size())), modules::module_errc::seal_broken,
                      "seal broken");
}

TEST_F(adversarial, smaller_build_over_a_larger_one_without_seals_never_crashes_the_host) {
  IN_OWN_PROCESS(
    modules::registry_options o = with_preflight(5s);
    o.loader.policy.require_seal = false;
    start(o);
    const auto small = bytes_of(built_plugin("test_plugin_v1")), large = bytes_of(built_plugin("plugin_padded"));
    for (std::size_t cut : {small.size() / 2, small.size()}) {
      try {
        mods->swap("alice", "calc", write_plugin("calc.so", caught_half_way(small, large, cut)));
        // Structurally sound and harmless in a child: then it must at least be the whole new build.
        EXPECT_EQ(identify(mods->get<test_api>("calc")) >> 32, 1U);
      } catch (const modules::module_error& e) {
        EXPECT_NE(std::string(e.what()).find("calc.so"), std::string::npos) << e.what();
      }
    }
    EXPECT_EQ(identify(mods->get<test_api>("calc")) >> 32, 1U);
  );
}

TEST_F(adversarial, every_truncation_point_is_refused_without_crashing) {
  IN_OWN_PROCESS(
    modules::registry_options o = registry_opts();
    o.loader.policy.require_seal = false;  // the ELF check alone
    start(o);
    const auto v2 = bytes_of(built_plugin("test_plugin_v2"));
    for (std::size_t cut : {std::size_t{20}, std::size_t{100}, std::size_t{4096}, v2.size() / 4, v2.size() / 2,
                            v2.size() * 3 / 4, v2.size() - 1}) {
      std::vector<std::byte> part(v2.begin(), v2.begin() + static_cast<std::ptrdiff_t>(cut));
      try {
        mods->swap("alice", "calc", write_plugin("calc.so", part));
        ADD_FAILURE() << "a " << cut << "-byte prefix was accepted";
      } catch (const modules::module_error& e) {
        EXPECT_TRUE(e.code() == modules::module_errc::truncated || e.code() == modules::module_errc::not_elf) << e.what();
      }
      expect_v1_serves();
    }
  );
}

TEST_F(adversarial, sparse_64_gib_file_is_refused_before_it_is_read) {
  start();
  const fs::path huge = plugins / "huge.so";
  {
    unique_fd fd(::open(huge.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    ASSERT_TRUE(fd);
    ASSERT_EQ(::ftruncate(fd.get(), off_t{64} << 30), 0);
  }
  expect_refused_swap(huge, modules::module_errc::too_large, "nothing was read");
}

TEST_F(adversarial, unsealed_plugin_is_refused_unless_the_policy_allows_it) {
  auto v2 = bytes_of(built_plugin("test_plugin_v2"));
  const std::uint64_t at = seal_at(v2);
  std::fill(v2.begin() + static_cast<std::ptrdiff_t>(at), v2.begin() + static_cast<std::ptrdiff_t>(at + 32), std::byte{0});
  start();
  expect_refused_swap(write_plugin("unsealed.so", v2), modules::module_errc::seal_broken, "not sealed");
  mods.reset();
  modules::registry_options o = registry_opts();
  o.loader.policy.require_seal = false;
  start(o);
  mods->swap("alice", "calc", plugins / "unsealed.so");
  EXPECT_EQ(identify(mods->get<test_api>("calc")), id_of(2, 1));
}

// ---- 2. checks before any plugin code runs ----------------------------------------

TEST_F(adversarial, wrong_interface_with_a_thread_starting_constructor_runs_nothing) {
  start();
  const std::size_t threads = threads_now();
  const std::size_t maps = maps_lines("plugin_wrong_interface_ctor_thread");
  expect_refused_swap(install("plugin_wrong_interface_ctor_thread"), modules::module_errc::interface_mismatch,
                      "nothing was run");
  EXPECT_EQ(threads_now(), threads) << "the constructor's thread was started";
  EXPECT_EQ(maps_lines("plugin_wrong_interface_ctor_thread"), maps) << "the file was mapped";
}

TEST_F(adversarial, wrong_abi_in_the_metadata_is_refused_before_dlopen) {
  start();
  expect_refused_swap(install("plugin_wrong_abi"), modules::module_errc::abi_mismatch, "nothing was run");
  EXPECT_EQ(maps_lines("plugin_wrong_abi"), 0U);
}

TEST_F(adversarial, plugin_without_a_metadata_note_is_refused) {
  start();
  expect_refused_swap(install("plugin_no_metadata"), modules::module_errc::no_metadata, "no hotswap metadata note");
}

TEST_F(adversarial, metadata_that_disagrees_with_the_descriptor_is_refused) {
  start();
  expect_refused_swap(install("plugin_note_disagrees"), modules::module_errc::bad_descriptor, "the metadata note says");
}

// ---- 2b. the preflight -------------------------------------------------------------

TEST_F(adversarial, preflight_refuses_a_constructor_that_crashes) {
  IN_OWN_PROCESS(
    start(with_preflight());
    expect_refused_swap(install("plugin_ctor_crash"), modules::module_errc::preflight_failed, "preflight failed");
  );
}

TEST_F(adversarial, preflight_refuses_a_constructor_that_exits) {
  IN_OWN_PROCESS(
    start(with_preflight());
    expect_refused_swap(install("plugin_ctor_exit"), modules::module_errc::preflight_failed, "exited with status 3");
  );
}

TEST_F(adversarial, preflight_refuses_a_constructor_that_hangs) {
  IN_OWN_PROCESS(
    start(with_preflight(500ms));
    expect_refused_swap(install("plugin_ctor_hang"), modules::module_errc::preflight_failed, "did not finish within 500 ms");
  );
}

TEST_F(adversarial, preflight_refuses_a_startup_that_crashes) {
  IN_OWN_PROCESS(
    start(with_preflight());
    expect_refused_swap(install("plugin_startup_crash"), modules::module_errc::preflight_failed, "preflight failed");
  );
}

TEST_F(adversarial, preflight_refuses_a_failing_self_test_before_the_host_runs_it) {
  start(with_preflight());
  const auto loaded = mods->counters().loads.loaded;
  expect_refused_swap(install("plugin_self_test_fail"), modules::module_errc::preflight_failed, "self test failed");
  EXPECT_EQ(mods->counters().loads.loaded, loaded) << "the host itself loaded the candidate";
}

TEST_F(adversarial, preflight_passes_a_good_plugin) {
  start(with_preflight());
  mods->swap("alice", "calc", install("test_plugin_v2"));
  EXPECT_EQ(identify(mods->get<test_api>("calc")), id_of(2, 1));
}

TEST_F(adversarial, preflight_without_its_helper_refuses) {
  modules::registry_options o = with_preflight();
  o.loader.preflight.helper = root_ / "no-such-helper";
  mods.emplace(dom, o);
  try {
    mods->add<test_api>("ops", "calc", install("test_plugin_v1"));  // add() runs it too
    ADD_FAILURE() << "accepted without a preflight";
  } catch (const modules::module_error& e) {
    EXPECT_EQ(e.code(), modules::module_errc::preflight_failed) << e.what();
    EXPECT_NE(std::string(e.what()).find("is not available"), std::string::npos) << e.what();
  }
  EXPECT_EQ(mods->counters().refusals, 1U);
  EXPECT_TRUE(mods->names().empty());
}

TEST_F(adversarial, without_preflight_a_crashing_constructor_takes_the_host_down) {
  // What the preflight is for: in-process loading cannot survive this.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        start();
        try {
          mods->swap("alice", "calc", install("plugin_ctor_crash"), std::nullopt, {.preflight = false, .expected_sha256 = {}});
        } catch (...) {
        }
        std::_Exit(0);
      },
      [](int status) { return !(WIFEXITED(status) && WEXITSTATUS(status) == 0); }, "");
}

// ---- 3. the policy covers the whole load -------------------------------------------

class dependencies : public adversarial, public ::testing::WithParamInterface<modules::shadow_mode> {
 protected:
  fs::path install_dep(mode_t mode = 0644) {
    const fs::path p = plugins / "libhs_dep.so";
    write_file(p, bytes_of(fs::path(HOTSWAP_TEST_PLUGIN_DIR) / "libhs_dep.so"), mode);
    return p;
  }
};

TEST_P(dependencies, origin_dependency_loads_from_its_checked_bytes) {
  modules::registry_options o = registry_opts(GetParam());
  o.preflight = true;  // the child loads the checked dependency too
  start(o);
  const fs::path dep = install_dep();
  on_stage = [&](std::string_view stage, const fs::path&) {
    if (stage == "dlopen") write_file(dep, std::vector<std::byte>(64, std::byte{0x7f}));  // replaced after the check
  };
  mods->swap("alice", "calc", install("plugin_with_dep"));
  EXPECT_EQ(identify(mods->get<test_api>("calc")), (std::uint64_t{3} << 32) | 77U);
}

INSTANTIATE_TEST_SUITE_P(modes, dependencies, ::testing::Values(modules::shadow_mode::file, modules::shadow_mode::memory));

TEST_F(adversarial, dependency_writable_by_others_is_refused_by_name) {
  start();
  write_file(plugins / "libhs_dep.so", bytes_of(fs::path(HOTSWAP_TEST_PLUGIN_DIR) / "libhs_dep.so"), 0666);
  expect_refused_swap(install("plugin_with_dep"), modules::module_errc::dependency_refused, "'libhs_dep.so'");
}

TEST_F(adversarial, missing_dependency_is_refused_by_name) {
  start();
  expect_refused_swap(install("plugin_with_dep"), modules::module_errc::dependency_refused,
                      "'libhs_dep.so' is neither in the allowed directory");
}

TEST_F(adversarial, runpath_outside_the_allowed_directory_is_refused) {
  start();
  expect_refused_swap(install("plugin_foreign_runpath"), modules::module_errc::dependency_refused,
                      "RUNPATH entry '/tmp/hotswap-test-foreign-runpath' lies outside");
}

TEST_F(adversarial, world_writable_allowed_directory_is_refused) {
  start();
  const fs::path v2 = install("test_plugin_v2");
  ::chmod(plugins.c_str(), 0777);
  expect_refused_swap(v2, modules::module_errc::insecure_permissions, "directory " + fs::canonical(plugins).string());
  ::chmod(plugins.c_str(), 0755);
}

TEST_F(adversarial, group_writable_subdirectory_is_refused) {
  start();
  fs::create_directory(plugins / "team");
  ::chmod((plugins / "team").c_str(), 0775);
  write_file(plugins / "team" / "calc.so", bytes_of(built_plugin("test_plugin_v2")));
  expect_refused_swap(plugins / "team" / "calc.so", modules::module_errc::insecure_permissions, "group or others");
}

TEST_F(adversarial, relative_allowed_directory_does_not_follow_a_later_chdir) {
  const fs::path cwd = fs::current_path();
  fs::current_path(root_);
  modules::registry_options o = registry_opts();
  o.loader.policy.allowed_dir = "plugins";
  start(o);
  fs::current_path("/");
  mods->swap("alice", "calc", install("test_plugin_v2"));
  EXPECT_EQ(identify(mods->get<test_api>("calc")), id_of(2, 1));
  EXPECT_EQ(mods->loader().options().policy.allowed_dir, root_ / "plugins");
  fs::current_path(cwd);
}

// ---- 4. in place: what was checked is what is loaded ---------------------------------

TEST_F(adversarial, in_place_file_renamed_over_after_the_check_loads_the_checked_bytes) {
  start(modules::shadow_mode::in_place);
  const fs::path target = install("test_plugin_v2", "calc2.so");
  const std::string checked = modules::sha256_hex(std::span<const std::byte>(bytes_of(target)));
  const fs::path other = install("test_plugin_v3", "other.so", 0644);
  on_stage = [&](std::string_view stage, const fs::path&) {
    if (stage == "shadow") fs::rename(other, target);
  };
  mods->swap("alice", "calc", target);
  EXPECT_EQ(identify(mods->get<test_api>("calc")), id_of(2, 1)) << "not the bytes that were checked";
  const auto swapped = log.of(modules::module_event_kind::swapped);
  EXPECT_NE(swapped.back().message.find(checked), std::string::npos) << swapped.back().message;
}

TEST_F(adversarial, in_place_file_written_after_the_check_is_refused) {
  start(modules::shadow_mode::in_place);
  const fs::path target = install("test_plugin_v2", "calc2.so");
  on_stage = [&](std::string_view stage, const fs::path&) {
    if (stage != "shadow") return;
    std::this_thread::sleep_for(20ms);  // a later mtime even on coarse filesystem clocks
    unique_fd fd(::open(target.c_str(), O_RDWR | O_CLOEXEC));
    char byte = 0;
    ASSERT_EQ(::pread(fd.get(), &byte, 1, 5000), 1);
    ASSERT_EQ(::pwrite(fd.get(), &byte, 1, 5000), 1);  // the same byte: a write nonetheless
  };
  expect_refused_swap(target, modules::module_errc::changed_while_loading, "written between its checks and dlopen");
}

TEST_F(adversarial, in_place_hard_link_to_a_loaded_file_is_refused) {
  start(modules::shadow_mode::in_place);
  const fs::path alias = plugins / "alias.so";
  fs::create_hard_link(plugins / "test_plugin_v1.so", alias);
  expect_refused([&] { mods->add<test_api>("ops", "other", alias); }, modules::module_errc::path_busy, "hard link");
}

class long_names : public adversarial, public ::testing::WithParamInterface<modules::shadow_mode> {};

TEST_P(long_names, name_max_file_name_loads_in_every_shadow_mode) {
  start(GetParam());
  const std::string name = std::string(NAME_MAX - 3, 'n') + ".so";
  mods->swap("alice", "calc", install("test_plugin_v2", name));
  EXPECT_EQ(identify(mods->get<test_api>("calc")), id_of(2, 1));
}

INSTANTIATE_TEST_SUITE_P(modes, long_names,
                         ::testing::Values(modules::shadow_mode::file, modules::shadow_mode::memory, modules::shadow_mode::in_place));

// ---- 5. exceptions and leftovers ------------------------------------------------------

TEST_F(adversarial, throwing_shutdown_is_reported_and_the_version_retained) {
  IN_OWN_PROCESS(
    mods.emplace(dom, registry_opts());
    mods->add<test_api>("ops", "calc", install("plugin_shutdown_throw"));
    mods->swap("alice", "calc", install("test_plugin_v2"));
    settle();
    const auto kept = log.of(modules::module_event_kind::retained);
    ASSERT_EQ(kept.size(), 1U);
    EXPECT_NE(kept[0].message.find("shutdown threw"), std::string::npos) << kept[0].message;
    EXPECT_EQ(mods->counters().loads.hook_exceptions, 1U);
    EXPECT_EQ(identify(mods->get<test_api>("calc")) >> 32, 2U);
  );
}

TEST_F(adversarial, failed_self_test_with_a_throwing_shutdown_is_refused_and_reported) {
  IN_OWN_PROCESS(
    start();
    expect_refused_swap(install("plugin_self_test_fail_shutdown_throw"), modules::module_errc::self_test_failed,
                        "add(2, 2) returned 5");
    const auto kept = log.of(modules::module_event_kind::retained);
    ASSERT_EQ(kept.size(), 1U);
    EXPECT_NE(kept[0].message.find("shutdown threw"), std::string::npos) << kept[0].message;
  );
}

TEST_F(adversarial, plugin_leaving_a_thread_behind_is_retained_and_the_host_survives) {
  IN_OWN_PROCESS(
    mods.emplace(dom, registry_opts());
    mods->add<test_api>("ops", "calc", install("plugin_leftover_thread"));
    mods->swap("alice", "calc", install("test_plugin_v2"));
    settle();
    const auto kept = log.of(modules::module_event_kind::retained);
    ASSERT_EQ(kept.size(), 1U);
    EXPECT_NE(kept[0].message.find("not declared unload-safe"), std::string::npos) << kept[0].message;
    EXPECT_EQ(log.count(modules::module_event_kind::unloaded), 0U);
    std::this_thread::sleep_for(50ms);  // the leftover thread keeps running the retained code
    EXPECT_EQ(mapped_files(shadow.string()).size(), 2U);
    EXPECT_EQ(identify(mods->get<test_api>("calc")) >> 32, 2U);
  );
}

TEST_F(adversarial, plugin_leaving_a_signal_handler_is_retained_and_the_handler_still_works) {
  IN_OWN_PROCESS(
    mods.emplace(dom, registry_opts());
    mods->add<test_api>("ops", "calc", install("plugin_leftover_signal"));
    mods->swap("alice", "calc", install("test_plugin_v2"));
    settle();
    EXPECT_EQ(log.count(modules::module_event_kind::retained), 1U);
    ::raise(SIGUSR2);  // runs the retained plugin's handler
    EXPECT_EQ(identify(mods->get<test_api>("calc")) >> 32, 2U);
  );
}

TEST_F(adversarial, retained_versions_are_bounded) {
  modules::registry_options o = registry_opts();
  o.loader.max_retained = 1;
  mods.emplace(dom, o);
  mods->add<test_api>("ops", "calc", install("plugin_keep_mapped"));
  mods->swap("alice", "calc", install("test_plugin_v1"));
  settle();
  EXPECT_EQ(mods->counters().loads.retained, 1U);
  try {
    mods->swap("alice", "calc", install("test_plugin_v2"));
    ADD_FAILURE() << "accepted past the retained limit";
  } catch (const modules::module_error& e) {
    EXPECT_EQ(e.code(), modules::module_errc::retained_limit) << e.what();
  }
  EXPECT_EQ(identify(mods->get<test_api>("calc")) >> 32, 1U);
}

TEST_F(adversarial, retained_versions_keep_no_memfd_open) {
  mods.emplace(dom, registry_opts(modules::shadow_mode::memory));
  mods->add<test_api>("ops", "calc", install("plugin_keep_mapped"));
  settle();
  const std::size_t fds = open_fds();
  for (int i = 0; i < 4; ++i) {
    mods->swap("alice", "calc", plugins / "plugin_keep_mapped.so");
    settle();
  }
  EXPECT_EQ(mods->counters().loads.retained, 4U);
  EXPECT_EQ(open_fds(), fds) << "retained versions kept their memfds";
  EXPECT_EQ(identify(mods->get<test_api>("calc")) >> 32, 5U);
}

// ---- 6. one plugin never stalls the others --------------------------------------------

TEST_F(adversarial, hung_startup_blocks_no_caller_of_any_module) {
  modules::registry_options o = registry_opts();
  o.loader.hook_deadline = 300ms;
  start(o);
  std::atomic<bool> done{false};
  std::thread slow([&] {
    try {
      mods->add<test_api>("ops", "slow", install("plugin_startup_hang"));
      ADD_FAILURE() << "a hung startup was published";
    } catch (const modules::module_error& e) {
      EXPECT_EQ(e.code(), modules::module_errc::hook_timeout) << e.what();
    }
    done.store(true, std::memory_order_release);  // pairs with the loop's acquire load
  });
  std::size_t calls_while_hung = 0;
  while (!done.load(std::memory_order_acquire)) {
    if (identify(mods->get<test_api>("calc")) == id_of(1, 0)) ++calls_while_hung;
    EXPECT_EQ(mods->status("calc").size(), 1U);
    std::this_thread::sleep_for(1ms);
  }
  slow.join();
  EXPECT_GT(calls_while_hung, 0U) << "get() or call() waited for another module's startup";
  EXPECT_EQ(mods->counters().loads.hook_timeouts, 1U);
  EXPECT_EQ(log.count(modules::module_event_kind::refused), 1U);
}

TEST_F(adversarial, hung_startup_of_a_swap_blocks_no_caller_or_status_of_the_same_module) {
  modules::registry_options o = registry_opts();
  o.loader.hook_deadline = 300ms;
  start(o);
  std::atomic<bool> done{false};
  std::thread slow([&] {
    EXPECT_THROW(mods->swap("alice", "calc", install("plugin_startup_hang")), modules::module_error);
    done.store(true, std::memory_order_release);  // pairs with the loop's acquire load
  });
  std::size_t checks_while_hung = 0;
  while (!done.load(std::memory_order_acquire)) {
    EXPECT_EQ(identify(mods->get<test_api>("calc")), id_of(1, 0));
    EXPECT_TRUE(mods->check_drains().empty());
    if (!done.load(std::memory_order_acquire)) ++checks_while_hung;
    std::this_thread::sleep_for(1ms);
  }
  slow.join();
  EXPECT_GT(checks_while_hung, 0U);
  expect_v1_serves();
}

TEST_F(adversarial, hung_shutdown_delays_only_its_own_module) {
  modules::registry_options o = registry_opts();
  o.loader.hook_deadline = 200ms;
  mods.emplace(dom, o);
  mods->add<test_api>("ops", "slow", install("plugin_shutdown_hang"));
  mods->add<test_api>("ops", "fast", install("test_plugin_v1"));
  mods->swap("alice", "slow", install("test_plugin_v2"));
  dom.barrier();  // slow's version 1 goes to its unload worker, which hangs in shutdown
  auto slow_v1 = mods->module("slow").record(1);
  for (const char* v : {"test_plugin_v2", "test_plugin_v3"}) mods->swap("alice", "fast", install(v));
  dom.barrier();  // the reclaimer is not held by the hung shutdown
  EXPECT_TRUE(mods->wait_drained("fast", 1, 10s));
  EXPECT_TRUE(mods->wait_drained("fast", 2, 10s));
  EXPECT_TRUE(mods->check_drains().empty());
  EXPECT_EQ(identify(mods->get<test_api>("fast")) >> 32, 3U);
  ASSERT_TRUE(mods->wait_drained("slow", 1, 10s));  // reported after the hook deadline
  const auto stuck = log.of(modules::module_event_kind::stuck);
  ASSERT_EQ(stuck.size(), 1U);
  EXPECT_EQ(stuck[0].module, "slow");
  EXPECT_NE(stuck[0].message.find("shutdown did not return"), std::string::npos) << stuck[0].message;
  EXPECT_EQ(mods->counters().loads.retained, 1U);
}

TEST_F(adversarial, a_loader_waits_for_its_own_unloads_only) {
  // Two loaders (two registries' worth): one version of `slow` unloads on a
  // worker whose shutdown sleeps 1.5 s. The other loader has nothing pending
  // and must say so at once, whatever `slow`'s worker is doing.
  auto slow_loader = make_loader(), idle_loader = make_loader();
  modules::module_slot<test_api> slow(dom, slow_loader, "slow", install("plugin_shutdown_hang"));
  modules::module_slot<test_api> idle(dom, idle_loader, "idle", install("test_plugin_v1"));
  static_cast<void>(slow.swap(install("test_plugin_v2")));
  dom.barrier();  // slow's version 1 goes to its unload worker (begun before barrier() returns)
  const auto slow_v1 = slow.record(1);
  const bool idle_was_idle = idle_loader->wait_for_unloads(0ns);
  const bool slow_was_idle = slow_loader->wait_for_unloads(0ns);
  const bool slow_v1_was_gone = slow_v1->gone();  // read after the count
  EXPECT_TRUE(idle_was_idle);
  EXPECT_TRUE(!slow_was_idle || slow_v1_was_gone);  // an ended count implies a gone version
  ASSERT_TRUE(slow_loader->wait_for_unloads(30s));
  EXPECT_TRUE(slow_v1->gone());
  EXPECT_TRUE(modules::wait_for_unloads(30s));  // the process-wide count: every loader's workers
}

// ---- 7. the audit trail ----------------------------------------------------------------

TEST_F(adversarial, concurrent_swaps_by_two_principals_log_their_own_versions) {
  start();
  const fs::path v2 = install("test_plugin_v2"), v3 = install("test_plugin_v3");
  constexpr int per_thread = 8;
  auto swapper = [&](const char* who, const fs::path& file) {
    for (int i = 0; i < per_thread; ++i) {
      for (int attempt = 0; attempt < 200; ++attempt) {
        try {
          mods->swap(who, "calc", file);
          break;
        } catch (const modules::module_error& e) {
          ASSERT_EQ(e.code(), modules::module_errc::backpressure) << e.what();
          dom.barrier();
        }
      }
    }
  };
  std::thread a(swapper, "alice", v2), b(swapper, "bob", v3);
  a.join();
  b.join();
  std::set<std::uint64_t> seen;
  for (const modules::module_event& e : log.of(modules::module_event_kind::swapped)) {
    if (e.to_version == 1) continue;  // the add
    EXPECT_EQ(e.from_version + 1, e.to_version) << e.principal;
    EXPECT_EQ(e.to_build, e.principal == "alice" ? "v2" : "v3");
    EXPECT_TRUE(seen.insert(e.to_version).second);
  }
  EXPECT_EQ(seen.size(), 2U * per_thread);
}

TEST_F(adversarial, throwing_sink_never_changes_the_outcome) {
  modules::registry_options o = registry_opts();
  o.loader.log = [](const modules::module_event&) { throw std::runtime_error("disk full"); };
  mods.emplace(dom, o);
  mods->add<test_api>("ops", "calc", install("test_plugin_v1"));
  const modules::swap_result r = mods->swap("alice", "calc", install("test_plugin_v2"));
  EXPECT_EQ(r.version, 2U);
  EXPECT_EQ(identify(mods->get<test_api>("calc")), id_of(2, 1));
  EXPECT_THROW(mods->swap("alice", "calc", plugins / "missing.so"), modules::module_error);
  EXPECT_EQ(mods->counters().refusals, 1U);
  EXPECT_GE(mods->counters().loads.sink_failures, 3U);
}

TEST_F(adversarial, control_characters_cannot_forge_a_log_line) {
  start();
  const fs::path forged = plugins / "x.so\nrefused ok";
  write_file(forged, bytes_of(built_plugin("test_plugin_v2")));
  mods->swap("eve\r\nadmin", "calc", forged);
  for (const modules::module_event& e : log.of(modules::module_event_kind::swapped))
    for (const std::string* field : {&e.principal, &e.file, &e.message, &e.to_build})
      for (char c : *field) EXPECT_FALSE(static_cast<unsigned char>(c) < 0x20) << *field;
  const auto last = log.of(modules::module_event_kind::swapped).back();
  EXPECT_EQ(last.principal, "eve\uFFFD\uFFFDadmin");
  EXPECT_NE(last.file.find("x.so\uFFFDrefused ok"), std::string::npos) << last.file;
}

TEST_F(adversarial, oversized_fields_are_capped) {
  modules::registry_options o = registry_opts();
  o.loader.max_event_bytes = 1024;
  start(o);
  const std::string principal(100'000, 'p');
  EXPECT_THROW(mods->swap(principal, "calc", plugins / "missing.so"), modules::module_error);
  const auto refused = log.of(modules::module_event_kind::refused).back();
  EXPECT_LE(refused.principal.size(), 256U + 3U);
  EXPECT_LE(refused.message.size(), 1024U + 3U);
}

TEST_F(adversarial, json_lines_sink_writes_one_parseable_line_per_event) {
  std::ostringstream out;
  modules::registry_options o = registry_opts();
  o.loader.log = modules::json_lines_sink(out);
  mods.emplace(dom, o);
  mods->add<test_api>("ops", "calc", install("test_plugin_v1"));
  mods->swap("eve\n", "calc", install("test_plugin_v2"));
  EXPECT_THROW(mods->swap("alice", "calc", plugins / "missing\".so"), modules::module_error);
  std::istringstream in(out.str());
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  ASSERT_GE(lines.size(), 3U);
  bool swapped = false, refused = false;
  for (const auto& j : lines) {
    if (j["kind"] == "swapped" && j["to_version"] == 2) {
      swapped = true;
      EXPECT_EQ(j["from_version"], 1);
      EXPECT_EQ(j["principal"], "eve\uFFFD");
    }
    refused = refused || j["kind"] == "refused";
  }
  EXPECT_TRUE(swapped);
  EXPECT_TRUE(refused);
  mods.reset();  // its unload events still go to `out`
}

TEST_F(adversarial, running_out_of_descriptors_is_a_logged_and_counted_refusal) {
#if defined(__SANITIZE_ADDRESS__)
  // The ASan build includes UBSan, whose vptr check needs descriptors of its own (a pipe to probe
  // memory) and reports a false "invalid vptr" when there are none.
  GTEST_SKIP() << "UBSan's vptr check cannot run without file descriptors";
#endif
  IN_OWN_PROCESS(
    start();
    const fs::path v2 = install("test_plugin_v2");
    rlimit old{};
    ::getrlimit(RLIMIT_NOFILE, &old);
    rlimit tight = old;
    const int lowest_free = ::dup(0);
    ::close(lowest_free);
    tight.rlim_cur = static_cast<rlim_t>(lowest_free);  // no new descriptor at all
    ::setrlimit(RLIMIT_NOFILE, &tight);
    try {
      mods->swap("alice", "calc", v2);
      ADD_FAILURE() << "accepted";
    } catch (const modules::module_error& e) {
      EXPECT_NE(std::string(e.what()).find("Too many open files"), std::string::npos) << e.what();
    }
    ::setrlimit(RLIMIT_NOFILE, &old);
    EXPECT_EQ(mods->counters().refusals, 1U);
    EXPECT_EQ(log.count(modules::module_event_kind::refused), 1U);
    expect_v1_serves();
  );
}

}  // namespace
}  // namespace hotswap::testing
