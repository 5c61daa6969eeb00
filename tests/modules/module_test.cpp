// A module slot over real plugins: load, call, swap, migrate, drain, unload,
// shadow modes, stale copies, quarantine, pins and keepalives.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "../sanitizer.hpp"
#include "fixture.hpp"

namespace hotswap::testing {
namespace {

using namespace std::chrono_literals;

class module_slot_test : public module_env {};

TEST_F(module_slot_test, swap_migrates_state_and_unloads_the_old_version) {
  {
    modules::loader_options o = loader_opts();
    o.shadow.fsync = true;  // the default, exercised here once
    modules::module_slot<test_api> calc(dom, std::make_shared<const modules::module_loader>(o), "calc", install("test_plugin_v1"));
    EXPECT_EQ(identify(calc), id_of(1, 0));
    EXPECT_EQ(calc.kernel_slot().read().version().label, "v1");
    EXPECT_EQ(calc.call([](const test_api& a) { return a.add(40, 2); }), 42U);
    EXPECT_EQ(files_in(shadow), 1U);

    const modules::swap_result r = calc.swap(install("test_plugin_v2"));
    EXPECT_EQ(r.version, 2U);
    EXPECT_EQ(r.replaced, 1U);
    EXPECT_EQ(identify(calc), id_of(2, 1));  // generation moved forward by migrate
    EXPECT_EQ(r.record->identity().build_version, "v2");

    ASSERT_TRUE(calc.wait_drained(1, 10s));
    EXPECT_EQ(calc.versions().size(), 1U);
    EXPECT_EQ(files_in(shadow), 1U);  // the old copy went with its version
    EXPECT_EQ(mapped_files(shadow.string()).size(), 1U);
    const auto unloaded = log.of(modules::module_event_kind::unloaded);
    ASSERT_EQ(unloaded.size(), 1U);
    EXPECT_EQ(unloaded[0].from_version, 1U);
    EXPECT_EQ(unloaded[0].from_build, "v1");
  }
  settle();
  EXPECT_EQ(files_in(shadow), 0U);
  EXPECT_EQ(mapped_files(shadow.string()).size(), 0U);
  EXPECT_EQ(log.count(modules::module_event_kind::unloaded), 2U);
  EXPECT_EQ(log.count(modules::module_event_kind::stayed_mapped), 0U);
  EXPECT_GE(log.count(modules::module_event_kind::plugin_log), 2U);  // each startup says hello
}

// Issue #26: hooks run on reused threads unless the plugin could leave work
// for a thread's exit. test_plugin_v1 imports nothing of the kind; the
// thread_local plugin's startup and shutdown each construct a thread_local
// with a destructor, which glibc runs at the exit of the thread they ran on
// and, until then, keeps the library mapped. Had its hooks run on a reused
// thread, that thread would still owe the destructor when its version is
// closed, the NOLOAD probe would find it mapped, and it would be quarantined.
TEST_F(module_slot_test, a_plugin_owing_thread_local_destructors_still_leaves_the_process) {
  {
    auto loader = make_loader(modules::shadow_mode::memory);
    const auto imports = [&](const char* name) {
      modules::detail::elf_facts facts;
      EXPECT_FALSE(modules::detail::check_elf(loader->read(install(name)).view(), &facts));
      return facts.thread_exit_imports;
    };
    EXPECT_TRUE(imports("test_plugin_v1").empty());
    EXPECT_FALSE(imports("plugin_thread_local").empty());

    modules::module_slot<test_api> calc(dom, loader, "calc", install("test_plugin_v1"));
    for (int round = 0; round < 3; ++round) {
      calc.swap(install("plugin_thread_local"));
      calc.swap(install("test_plugin_v1"));
    }
    EXPECT_EQ(identify(calc) >> 32, 1U);
    for (std::uint64_t v = 1; v < calc.current_version(); ++v) ASSERT_TRUE(calc.wait_drained(v, 10s)) << v;
    EXPECT_EQ(mapped_files("memfd:hs.plugin_thread_local").size(), 0U);
    EXPECT_EQ(mapped_files("memfd:hs.test_plugin_v1").size(), 1U);  // the serving one
  }
  settle();
  EXPECT_EQ(log.count(modules::module_event_kind::unloaded), 7U);
  EXPECT_EQ(log.count(modules::module_event_kind::stayed_mapped), 0U);
}

// A prefork server loads its modules, then forks workers that swap on their
// own: in the child, the swap's hooks run and the domain's new reclaimer
// unloads the version the parent had loaded.
TEST_F(module_slot_test, a_forked_child_swaps_and_unloads_the_parents_version) {
  if (under_tsan) GTEST_SKIP() << "ThreadSanitizer does not support threads started after a multi-threaded fork";
  modules::loader_options o = loader_opts();
  o.hook_deadline = 3s;  // a hook nobody runs fails the swap in 3 s, not 10
  modules::module_slot<test_api> calc(dom, std::make_shared<const modules::module_loader>(o), "calc",
                                      install("test_plugin_v1"));
  const fs::path v2 = install("test_plugin_v2");
  const pid_t child = ::fork();
  ASSERT_NE(child, -1);
  if (child == 0) {
    ::alarm(30);  // a hang in the child becomes a failure, not a stuck test
    int bad = 0;
    try {
      calc.swap(v2);  // v2's startup and migrate
      if (identify(calc) != id_of(2, 1)) bad |= 2;
      if (!calc.wait_drained(1, 10s)) bad |= 4;  // v1's unload, shutdown and dlclose
    } catch (...) {
      bad |= 1;
    }
    ::_exit(bad);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "child killed by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  EXPECT_EQ(WEXITSTATUS(status), 0) << "bit 1: the swap failed, 2: not on v2, 4: v1 never unloaded";
  EXPECT_EQ(identify(calc), id_of(1, 0));  // the parent is unaffected
}

TEST_F(module_slot_test, shadow_copy_is_named_by_scheme_and_survives_the_original) {
  const fs::path original = install("test_plugin_v1", "calc.so");
  modules::module_slot<test_api> calc(dom, make_loader(), "calc", original);
  const auto reports = calc.versions();
  ASSERT_EQ(reports.size(), 1U);
  const fs::path copy = reports[0].id.load_path;
  EXPECT_EQ(copy.parent_path(), shadow);
  pid_t pid = 0;
  ASSERT_TRUE(modules::detail::shadow_store::parse_name(copy.filename().string(), &pid)) << copy;
  EXPECT_EQ(pid, ::getpid());
  const std::string name = copy.filename().string();
  EXPECT_NE(name.find("." + std::to_string(fs::file_size(original)) + "."), std::string::npos);
  EXPECT_NE(name.find(reports[0].id.sha256.substr(0, 16)), std::string::npos);
  EXPECT_TRUE(name.ends_with(".calc.so"));
  EXPECT_EQ(reports[0].id.sha256, modules::sha256_hex(std::span<const std::byte>(bytes_of(original))));

  // The operator overwrites, then deletes, the original: the loaded code does not care.
  write_file(original, bytes_of(built_plugin("test_plugin_v2")));
  EXPECT_EQ(identify(calc), id_of(1, 0));
  fs::remove(original);
  EXPECT_EQ(identify(calc), id_of(1, 0));
}

TEST_F(module_slot_test, memory_mode_leaves_nothing_on_disk_and_closes_its_fd) {
  const std::size_t fds = open_fds();
  {
    modules::module_slot<test_api> calc(dom, make_loader(modules::shadow_mode::memory), "calc", install("test_plugin_v1"));
    EXPECT_TRUE(calc.versions()[0].id.load_path.starts_with("/proc/self/fd/"));
    EXPECT_EQ(open_fds(), fds + 1);  // the sealed memfd, open while mapped
    calc.swap(install("test_plugin_v2"));
    EXPECT_EQ(identify(calc), id_of(2, 1));
    ASSERT_TRUE(calc.wait_drained(1, 10s));
    EXPECT_EQ(open_fds(), fds + 1);
    EXPECT_EQ(mapped_files("memfd:hs.test_plugin_v").size(), 1U);
  }
  settle();
  EXPECT_EQ(open_fds(), fds);
  EXPECT_EQ(mapped_files("memfd:hs.test_plugin_v").size(), 0U);
  EXPECT_EQ(log.count(modules::module_event_kind::stayed_mapped), 0U);
}

TEST_F(module_slot_test, in_place_mode_loads_the_original_once_at_a_time) {
  auto loader = make_loader(modules::shadow_mode::in_place);
  const fs::path v1 = install("test_plugin_v1");
  {
    modules::module_slot<test_api> calc(dom, loader, "calc", v1);
    // Loaded through the descriptor that was checked; the mapping names the original file.
    EXPECT_TRUE(calc.versions()[0].id.load_path.starts_with("/proc/self/fd/")) << calc.versions()[0].id.load_path;
    EXPECT_EQ(mapped_files(fs::canonical(v1).string()).size(), 1U);
    try {
      calc.swap(v1);
      ADD_FAILURE() << "loading a mapped path in place must be refused";
    } catch (const modules::module_error& e) {
      EXPECT_EQ(e.code(), modules::module_errc::path_busy) << e.what();
    }
    EXPECT_EQ(identify(calc), id_of(1, 0));
    calc.swap(install("test_plugin_v2"));
    ASSERT_TRUE(calc.wait_drained(1, 10s));
    calc.swap(v1);  // unloaded now: its path may be loaded again
    EXPECT_EQ(identify(calc), id_of(1, 2));
  }
  settle();
  EXPECT_EQ(log.count(modules::module_event_kind::stayed_mapped), 0U);
}

TEST_F(module_slot_test, stale_copies_of_dead_processes_are_removed_and_nothing_else) {
  fs::create_directory(shadow);
  ::chmod(shadow.c_str(), 0700);
  // A pid above the kernel's maximum (2^22) cannot be alive.
  const fs::path stale = shadow / "hs.4194999.3.1700000000000000000.1234.0123456789abcdef.calc.so";
  const fs::path ours = shadow / ("hs." + std::to_string(::getpid()) + ".99.1.2.0123456789abcdef.calc.so");
  const fs::path other = shadow / "notes.txt";
  const fs::path almost = shadow / "hs.4194999.x.1.2.0123456789abcdef.calc.so";
  for (const auto& p : {stale, ours, other, almost}) write_file(p, std::vector<std::byte>(4));
  modules::module_loader loader(loader_opts());
  EXPECT_EQ(loader.shadow().stale_removed(), 1U);
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(ours));
  EXPECT_TRUE(fs::exists(other));
  EXPECT_TRUE(fs::exists(almost));
}

TEST_F(module_slot_test, shadow_directory_open_to_others_is_refused) {
  fs::create_directory(shadow);
  ::chmod(shadow.c_str(), 0777);
  try {
    modules::module_loader loader(loader_opts());
    ADD_FAILURE() << "a world-writable shadow directory must be refused";
  } catch (const modules::module_error& e) {
    EXPECT_EQ(e.code(), modules::module_errc::insecure_permissions) << e.what();
  }
}

TEST_F(module_slot_test, a_pin_keeps_its_version_loaded_until_dropped) {
  modules::module_slot<test_api> calc(dom, make_loader(), "calc", install("test_plugin_v1"));
  auto session = calc.pin();
  calc.swap(install("test_plugin_v2"));
  settle();
  EXPECT_EQ(session->identify(), id_of(1, 0));
  EXPECT_EQ(identify(calc), id_of(2, 1));
  auto reports = calc.versions();
  ASSERT_EQ(reports.size(), 2U);
  EXPECT_EQ(reports[0].state, modules::version_state::draining);
  EXPECT_EQ(reports[0].pins, 1U);
  EXPECT_EQ(reports[1].state, modules::version_state::serving);
  EXPECT_EQ(reports[1].pins, 0U);
  EXPECT_FALSE(calc.wait_drained(1, 20ms));
  session.reset();
  EXPECT_TRUE(calc.wait_drained(1, 10s));
  EXPECT_EQ(log.count(modules::module_event_kind::unloaded), 1U);
}

TEST_F(module_slot_test, plugin_async_work_holds_a_keepalive_until_it_finishes) {
  modules::module_slot<test_api> calc(dom, make_loader(), "calc", install("test_plugin_v1"));
  const test_api* v1 = nullptr;
  ASSERT_EQ(calc.call([&](const test_api& a) {
              v1 = &a;
              return a.start_work();
            }),
            1);
  calc.swap(install("test_plugin_v2"));
  settle();
  EXPECT_FALSE(calc.wait_drained(1, 20ms));
  auto reports = calc.versions();
  ASSERT_EQ(reports.size(), 2U);
  EXPECT_EQ(reports[0].keepalives, 1);
  EXPECT_EQ(reports[0].pins, 0U);
  EXPECT_EQ(v1->identify(), id_of(1, 0));  // still loaded and started: legal to call
  v1->finish_work();                       // the plugin thread releases its keepalive
  EXPECT_TRUE(calc.wait_drained(1, 10s));
  EXPECT_EQ(log.count(modules::module_event_kind::unloaded), 1U);
}

TEST_F(module_slot_test, unpublished_version_with_async_work_is_shut_down_then_unloaded) {
  auto loader = make_loader();
  {
    modules::loaded_module m = loader->open(loader->read(install("test_plugin_v1")), modules::interface_of<test_api>(), "calc");
    m.start();
    ASSERT_EQ(m.api<test_api>().start_work(), 1);  // a plugin thread holds a keepalive
    EXPECT_EQ(m.record().holds(), 2);
  }  // never published (a later step failed): shutdown joins the worker, which lets go
  EXPECT_EQ(log.count(modules::module_event_kind::unloaded), 1U);
  EXPECT_EQ(log.count(modules::module_event_kind::stayed_mapped), 0U);
  EXPECT_EQ(files_in(shadow), 0U);
}

TEST_F(module_slot_test, unpublished_version_whose_keepalive_outlives_shutdown_is_retained) {
  modules::loader_options o = loader_opts();
  o.drain_deadline = 20ms;
  auto loader = std::make_shared<const modules::module_loader>(o);
  {
    modules::loaded_module m = loader->open(loader->read(install("test_plugin_v1")), modules::interface_of<test_api>(), "calc");
    m.start();
    ASSERT_EQ(m.api<test_api>().hold_keepalive(), 1);  // and never released
  }
  const auto kept = log.of(modules::module_event_kind::retained);
  ASSERT_EQ(kept.size(), 1U);
  EXPECT_NE(kept[0].message.find("keepalives still held after shutdown"), std::string::npos) << kept[0].message;
  EXPECT_EQ(loader->stats().refused_retained, 1U);  // never published: the refusals' budget
  EXPECT_EQ(loader->stats().retained, 0U);
  EXPECT_EQ(files_in(shadow), 1U);  // never dlclosed: its copy stays
}

TEST(version_record, keepalive_is_refused_once_the_version_is_leaving) {
  modules::version_record r(modules::version_identity{});
  EXPECT_TRUE(r.try_hold());  // serving: async work may start
  r.retire();                 // replaced; one keepalive still out
  EXPECT_TRUE(r.try_hold());  // the version is still held: more work may join
  r.drop_hold();
  r.drop_hold();              // last one: the self pin goes
  EXPECT_EQ(r.holds(), 0);
  EXPECT_FALSE(r.try_hold());
}

TEST_F(module_slot_test, a_version_left_mapped_by_dlclose_is_quarantined_and_never_reused) {
  modules::module_slot<test_api> calc(dom, make_loader(), "calc", install("plugin_nodelete"));
  const std::string first_copy = calc.versions()[0].id.load_path;
  calc.swap(install("test_plugin_v2"));
  ASSERT_TRUE(calc.wait_drained(1, 10s));
  auto mapped = log.of(modules::module_event_kind::stayed_mapped);
  ASSERT_EQ(mapped.size(), 1U);
  EXPECT_NE(mapped[0].message.find("quarantined"), std::string::npos) << mapped[0].message;
  EXPECT_TRUE(fs::exists(first_copy));  // its inode stays taken
  EXPECT_EQ(calc.loader().stats().quarantined, 1U);

  // The same file again: a new copy under a new name, a fresh mapping.
  calc.swap(install("plugin_nodelete"));
  EXPECT_EQ(identify(calc), id_of(7, 2));
  EXPECT_NE(calc.versions().back().id.load_path, first_copy);
}

#if defined(__GNUC__) && !defined(__clang__)
TEST_F(module_slot_test, without_fno_gnu_unique_gcc_plugins_never_unmap) {
  modules::module_slot<test_api> calc(dom, make_loader(), "calc", install("plugin_gnu_unique"));
  EXPECT_EQ(identify(calc), id_of(8, 0));
  calc.swap(install("test_plugin_v1"));
  ASSERT_TRUE(calc.wait_drained(1, 10s));
  EXPECT_EQ(log.count(modules::module_event_kind::stayed_mapped), 1U)
      << "an inline variable became STB_GNU_UNIQUE, which makes glibc ignore dlclose";
}
#endif

}  // namespace
}  // namespace hotswap::testing
