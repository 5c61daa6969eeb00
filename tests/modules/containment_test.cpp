// Issue #18: what a crafted or careless plugin could still do to the host, and
// what the preflight child reports. Each case shows the refusal (or that the
// request now works) and that the serving version keeps serving:
//   - a file with 65,000 PT_LOAD segments (mapping exhaustion): refused before dlopen;
//   - a rollback loads the dependency bytes checked for that version, not today's file;
//   - a redeploy whose dependency is the same build under the same SONAME;
//   - a descriptor that disagrees with its note never reaches dlopen in the host,
//     and refused-but-kept images cannot use up the room good swaps need;
//   - a plugin that re-opens itself RTLD_GLOBAL is refused;
//   - the preflight says who ended its child, and names a daemon the candidate started.
#include <elf.h>
#include <link.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>

#include "adversarial.hpp"

namespace hotswap::testing {
namespace {

using namespace std::chrono_literals;

fs::path built_library(const std::string& name) { return fs::path(HOTSWAP_TEST_PLUGIN_DIR) / name; }

/// `bytes` (a built plugin) unsealed, with its program header table moved to the
/// end of the file and `extra` PT_LOAD entries added: each maps the file's first
/// page at the next address, so each becomes a mapping of its own (ld.so loads
/// such a file: 65,000 of them took a host to 65,060 of 65,530 mappings).
std::vector<std::byte> with_extra_load_segments(std::vector<std::byte> bytes, std::size_t extra) {
  const std::uint64_t seal = seal_at(bytes);
  std::fill_n(bytes.begin() + static_cast<std::ptrdiff_t>(seal), 32, std::byte{0});
  ElfW(Ehdr) h;
  std::memcpy(&h, bytes.data(), sizeof h);
  std::vector<ElfW(Phdr)> table(h.e_phnum);
  std::memcpy(table.data(), bytes.data() + h.e_phoff, h.e_phnum * sizeof(ElfW(Phdr)));
  std::uint64_t top = 0;
  for (const auto& p : table)
    if (p.p_type == PT_LOAD) top = std::max<std::uint64_t>(top, p.p_vaddr + p.p_memsz);
  top = (top + 0xffff) & ~std::uint64_t{0xffff};
  for (std::size_t i = 0; i < extra; ++i) {
    ElfW(Phdr) p{};
    p.p_type = PT_LOAD;
    p.p_flags = PF_R;
    p.p_offset = 0;
    p.p_vaddr = p.p_paddr = top + i * 0x1000;  // adjacent, but all at file offset 0: no two merge into one mapping
    p.p_filesz = p.p_memsz = 0x1000;
    p.p_align = 0x1000;
    table.push_back(p);
  }
  bytes.resize((bytes.size() + 7) & ~std::size_t{7});
  h.e_phoff = bytes.size();
  h.e_phnum = static_cast<std::uint16_t>(table.size());
  const auto* raw = reinterpret_cast<const std::byte*>(table.data());
  bytes.insert(bytes.end(), raw, raw + table.size() * sizeof(ElfW(Phdr)));
  std::memcpy(bytes.data(), &h, sizeof h);
  return bytes;
}

class containment : public adversarial {
 protected:
  fs::path install_dep(const std::string& built = "libhs_dep.so") {
    const fs::path p = plugins / "libhs_dep.so";
    write_file(p, bytes_of(built_library(built)));
    return p;
  }
  std::uint64_t calc_identity() { return identify(mods->get<test_api>("calc")); }
};

// ---- 2. program headers and mappings -------------------------------------------------

TEST_F(containment, file_with_65000_load_segments_is_refused_before_dlopen) {
  IN_OWN_PROCESS(  // before the fix this mapped 65,000 segments into the process
    modules::registry_options o = with_preflight();
    o.loader.policy.require_seal = false;  // the crafted file is unsealed
    start(o);
    const auto crafted = with_extra_load_segments(bytes_of(built_plugin("test_plugin_v2")), 65000);
    const fs::path file = write_plugin("crafted.so", crafted);
    const auto maps_before = maps_lines("");
    const auto loaded = mods->counters().loads.loaded;
    const auto preflights = mods->counters().loads.preflights;
    expect_refused_swap(file, modules::module_errc::elf_limit, "program headers");
    EXPECT_EQ(mods->counters().loads.loaded, loaded) << "the host dlopened it";
    EXPECT_EQ(mods->counters().loads.preflights, preflights) << "a child dlopened it";
    EXPECT_LT(maps_lines(""), maps_before + 100);
  );
}

TEST_F(containment, load_segment_limit_is_configurable) {
  modules::registry_options o = registry_opts();
  o.loader.policy.elf.max_program_headers = 65535;
  o.loader.policy.require_seal = false;
  start(o);
  const fs::path file = write_plugin("crafted.so", with_extra_load_segments(bytes_of(built_plugin("test_plugin_v2")), 64));
  expect_refused_swap(file, modules::module_errc::elf_limit, "loadable segments (PT_LOAD), the limit is 16");
}

TEST_F(containment, load_that_would_leave_too_few_mappings_is_refused) {
  std::ifstream in("/proc/sys/vm/max_map_count");
  std::size_t limit = 0;
  ASSERT_TRUE(in >> limit);
  modules::registry_options o = registry_opts();  // a reserve no load can meet
  o.loader.map_count_reserve = limit;
  mods.emplace(dom, o);
  try {
    mods->add<test_api>("ops", "calc", install("test_plugin_v1"));
    ADD_FAILURE() << "accepted";
  } catch (const modules::module_error& e) {
    EXPECT_EQ(e.code(), modules::module_errc::mapping_limit) << e.what();
    EXPECT_NE(std::string(e.what()).find("vm.max_map_count"), std::string::npos) << e.what();
  }
  EXPECT_EQ(mods->counters().loads.loaded, 0U);
}

TEST_F(containment, mapped_segments_are_accounted_per_version) {
  start();
  settle();
  const auto one = mods->counters().loads.mapped_segments;
  EXPECT_GE(one, 2U);
  mods->swap("alice", "calc", install("test_plugin_v2"));
  settle();  // v1 unloaded: its segments are given back
  EXPECT_EQ(mods->counters().loads.mapped_segments, one);
}

// ---- 3. rollbacks load the checked dependency bytes; redeploys share them -------------

TEST_F(containment, rollback_loads_the_dependency_bytes_checked_for_that_version_when_the_file_was_replaced) {
  start();
  install_dep();
  const auto with_dep = mods->swap("alice", "calc", install("plugin_with_dep")).version;
  EXPECT_EQ(calc_identity(), (std::uint64_t{3} << 32) | 77U);
  mods->swap("alice", "calc", install("test_plugin_v2"));
  settle();
  install_dep("libhs_dep_78.so");  // another build under the same name and SONAME
  mods->rollback("alice", "calc", with_dep);
  EXPECT_EQ(calc_identity(), (std::uint64_t{3} << 32) | 77U) << "the rollback loaded today's dependency file";
}

TEST_F(containment, rollback_loads_the_dependency_bytes_checked_for_that_version_when_the_file_was_removed) {
  start();
  const fs::path dep = install_dep();
  const auto with_dep = mods->swap("alice", "calc", install("plugin_with_dep")).version;
  mods->swap("alice", "calc", install("test_plugin_v2"));
  settle();
  fs::remove(dep);
  mods->rollback("alice", "calc", with_dep);
  EXPECT_EQ(calc_identity(), (std::uint64_t{3} << 32) | 77U);
}

TEST_F(containment, redeploy_sharing_the_serving_versions_dependency_build_is_published) {
  start();
  install_dep();
  mods->swap("alice", "calc", install("plugin_with_dep"));
  mods->swap("alice", "calc", install("plugin_with_dep_v4"));  // libhs_dep.so is loaded for the version it replaces
  EXPECT_EQ(calc_identity() >> 32, 4U);
  EXPECT_EQ(calc_identity() & 0xffffffffU, 77U);
}

TEST_F(containment, redeploy_with_another_build_under_a_loaded_soname_is_refused_with_what_to_do) {
  start();
  install_dep();
  mods->swap("alice", "calc", install("plugin_with_dep"));
  install_dep("libhs_dep_78.so");
  try {
    mods->swap("alice", "calc", install("plugin_with_dep_v4"));
    ADD_FAILURE() << "accepted";
  } catch (const modules::module_error& e) {
    EXPECT_EQ(e.code(), modules::module_errc::dependency_refused) << e.what();
    EXPECT_NE(std::string(e.what()).find("its own SONAME"), std::string::npos) << e.what();
  }
  EXPECT_EQ(calc_identity(), (std::uint64_t{3} << 32) | 77U);
}

// ---- 4. the preflight checks what the host checks; refusals have their own budget ------

TEST_F(containment, descriptor_that_disagrees_with_its_note_never_reaches_the_hosts_dlopen) {
  start(with_preflight());
  const auto loaded = mods->counters().loads.loaded;
  expect_refused_swap(install("plugin_note_disagrees"), modules::module_errc::preflight_failed, "the metadata note says");
  EXPECT_EQ(mods->counters().loads.loaded, loaded) << "the host dlopened it";
}

TEST_F(containment, refused_but_retained_images_never_block_a_good_swap) {
  modules::registry_options o = registry_opts();  // no preflight asked for
  o.loader.max_retained = 1;
  o.loader.max_refused_retained = 1;
  start(o);
  expect_refused_swap(install("plugin_note_disagrees_kept"), modules::module_errc::bad_descriptor, "the metadata note says");
  settle();
  EXPECT_EQ(mods->counters().loads.refused_retained, 1U);
  EXPECT_EQ(mods->counters().loads.retained, 0U);
  // The refusals' budget is spent: requests now pass a child first, good ones too.
  mods->swap("alice", "calc", install("test_plugin_v2"));
  EXPECT_EQ(calc_identity() >> 32, 2U);
  EXPECT_EQ(mods->counters().loads.preflights_forced, 1U);
  const auto loaded = mods->counters().loads.loaded;
  try {
    mods->swap("alice", "calc", plugins / "plugin_note_disagrees_kept.so");
    ADD_FAILURE() << "accepted";
  } catch (const modules::module_error& e) {
    EXPECT_EQ(e.code(), modules::module_errc::preflight_failed) << e.what();
  }
  settle();
  EXPECT_EQ(mods->counters().loads.loaded, loaded) << "the host dlopened it";
  EXPECT_EQ(mods->counters().loads.refused_retained, 1U);
}

// ---- 5. the global scope ------------------------------------------------------------------

TEST_F(containment, plugin_that_makes_itself_global_is_refused_by_the_preflight) {
  IN_OWN_PROCESS(  // before the fix the host's global scope was changed for good
    start(with_preflight());
    install_dep();
    expect_refused_swap(install("plugin_global"), modules::module_errc::preflight_failed,
                        "promoted to global scope: a global lookup of '");
    mods->swap("alice", "calc", install("plugin_with_dep"));
    EXPECT_EQ(calc_identity(), (std::uint64_t{3} << 32) | 77U) << "another module's dependency lookup found the plugin";
  );
}

TEST_F(containment, plugin_that_makes_itself_global_is_refused_by_the_host_after_startup) {
  IN_OWN_PROCESS(
    start();
    expect_refused_swap(install("plugin_global"), modules::module_errc::global_scope, "' resolves into the plugin");
  );
}

// ---- 1. where the helper is ---------------------------------------------------------------------

TEST(preflight_helper, the_hosts_choice_first_then_next_to_its_executable) {
  std::string tried;
  EXPECT_EQ(modules::detail::find_preflight_helper("/bin/true", tried), fs::path("/bin/true"));
  EXPECT_TRUE(tried.empty()) << tried;
  const fs::path exe_dir = fs::read_symlink("/proc/self/exe").parent_path();
  const fs::path found = modules::detail::find_preflight_helper("/nonexistent/hotswap-preflight", tried);
  EXPECT_NE(tried.find("'/nonexistent/hotswap-preflight'"), std::string::npos) << tried;
  const fs::path beside = exe_dir / "hotswap-preflight",
                 libexec = (exe_dir / ".." / "libexec" / "hotswap" / "hotswap-preflight").lexically_normal();
  if (found.empty()) {  // nothing installed next to this test binary: both places were tried
    EXPECT_NE(tried.find(beside.string()), std::string::npos) << tried;
    EXPECT_NE(tried.find(libexec.string()), std::string::npos) << tried;
  } else {
    EXPECT_TRUE(found == beside || found == libexec) << found;
  }
}

// ---- the preflight reports what it observed ------------------------------------------------

/// Whether `pid` has a handler for `sig` (SigCgt in /proc/<pid>/status).
bool catches(pid_t pid, int sig) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("SigCgt:")) return (std::stoull(line.substr(7), nullptr, 16) >> (sig - 1) & 1U) != 0;
  return false;
}

/// The pids of this process's children named hotswap-preflight (comm is cut to 15 characters).
std::vector<pid_t> preflight_children() {
  std::vector<pid_t> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename();
    if (name.empty() || name[0] < '1' || name[0] > '9') continue;
    std::ifstream in(e.path() / "stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto close = text.rfind(')');
    if (close == std::string::npos || text.find("(hotswap-preflig") == std::string::npos) continue;
    if (std::strtol(text.c_str() + close + 4, nullptr, 10) == ::getpid()) out.push_back(std::stoi(name));
  }
  return out;
}

TEST_F(containment, preflight_child_killed_from_outside_is_reported_as_such) {
  start(with_preflight(60s));
  std::atomic<bool> done{false};
  std::thread killer([&] {
    for (int i = 0; i < 6000 && !done.load(std::memory_order_relaxed); ++i) {  // a flag: no data with it
      if (auto children = preflight_children(); !children.empty()) {
        // Once it observes SIGTERM (or after 2 s: a helper that never does).
        for (int k = 0; k < 200 && !catches(children.front(), SIGTERM); ++k) std::this_thread::sleep_for(10ms);
        ::kill(children.front(), SIGTERM);
        return;
      }
      std::this_thread::sleep_for(10ms);
    }
  });
  try {
    mods->swap("alice", "calc", install("plugin_ctor_hang"));
    ADD_FAILURE() << "accepted";
  } catch (const modules::module_error& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.code(), modules::module_errc::preflight_failed) << what;
    EXPECT_NE(what.find("SIGTERM"), std::string::npos) << what;
    EXPECT_NE(what.find("sent by process " + std::to_string(::getpid())), std::string::npos) << what;
    EXPECT_EQ(what.find("the candidate killed"), std::string::npos) << what;
  }
  done.store(true, std::memory_order_relaxed);  // a flag: no data with it
  killer.join();
  expect_v1_serves();
}

TEST_F(containment, preflight_names_a_crash_the_candidate_raised_itself) {
  IN_OWN_PROCESS(
    start(with_preflight());
    expect_refused_swap(install("plugin_ctor_crash"), modules::module_errc::preflight_failed,
                        "SIGSEGV) during dlopen (its constructors); it saw the signal raised by the test process itself");
  );
}

TEST_F(containment, preflight_names_a_daemon_the_constructor_started_without_waiting_for_the_deadline) {
  start(with_preflight(20s));
  try {
    mods->swap("alice", "calc", install("plugin_ctor_daemon"));
    ADD_FAILURE() << "accepted";
  } catch (const modules::module_error& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.code(), modules::module_errc::preflight_failed) << what;
    EXPECT_NE(what.find("started processes that were still running"), std::string::npos) << what;
    EXPECT_NE(what.find("after its hooks: pid "), std::string::npos) << what;  // named (before or after its exec)
    EXPECT_EQ(what.find("did not finish within"), std::string::npos) << what;
  }
  expect_v1_serves();
}

}  // namespace
}  // namespace hotswap::testing
