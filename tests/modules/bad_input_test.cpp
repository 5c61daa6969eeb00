// Bad input, each case a real file: the request is refused with an error that
// names the file and the cause, the serving version keeps serving, the refusal
// is logged, and nothing leaks (shadow copies, fds, mappings).
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <elf.h>
#include <optional>

#include "fixture.hpp"

namespace hotswap::testing {
namespace {

using namespace std::chrono_literals;

class bad_input : public module_env {
 protected:
  void SetUp() override { restart(registry_opts()); }

  void TearDown() override {
    mods.reset();
    settle();
    EXPECT_EQ(files_in(shadow), 0U) << "a shadow copy was left behind";
    EXPECT_EQ(log.count(modules::module_event_kind::stayed_mapped), 0U);
  }

  void restart(modules::registry_options o) {
    mods.reset();
    settle();
    mods.emplace(dom, std::move(o));
    mods->add<test_api>("alice", "calc", install("test_plugin_v1"));
    settle();
    fds_before = open_fds();
    maps_before = maps_lines(shadow.string());
    files_before = files_in(shadow);
    refusals_before = mods->counters().refusals;
  }

  /// Asks for a swap to `file` and checks everything a refusal must guarantee.
  void expect_refused(const fs::path& file, modules::module_errc code, const std::string& cause,
                      const std::string& principal = "alice", const std::string& module = "calc",
                      const modules::request_options& request = {}) {
    try {
      mods->swap(principal, module, file, std::nullopt, request);
      ADD_FAILURE() << "accepted " << file;
      return;
    } catch (const modules::module_error& e) {
      const std::string what = e.what();
      EXPECT_EQ(e.code(), code) << what;
      EXPECT_NE(what.find(file.string()), std::string::npos) << "the error must name the file: " << what;
      EXPECT_NE(what.find(cause), std::string::npos) << "expected cause '" << cause << "' in: " << what;
    }
    EXPECT_EQ(identify(mods->get<test_api>("calc")), id_of(1, 0)) << "the serving version must keep serving";
    EXPECT_EQ(mods->module("calc").current_version(), 1U);
    settle();
    EXPECT_EQ(files_in(shadow), files_before);
    EXPECT_EQ(maps_lines(shadow.string()), maps_before);
    EXPECT_EQ(open_fds(), fds_before);
    EXPECT_EQ(mods->counters().refusals, refusals_before + 1);
    const auto refused = log.of(modules::module_event_kind::refused);
    ASSERT_FALSE(refused.empty());
    EXPECT_EQ(refused.back().principal, principal);
    EXPECT_EQ(refused.back().module, module);
    EXPECT_EQ(refused.back().file, file.string());
    EXPECT_NE(refused.back().message.find(cause), std::string::npos) << refused.back().message;
  }

  fs::path write_bytes(const std::string& name, std::span<const std::byte> bytes, mode_t mode = 0644) {
    write_file(plugins / name, bytes, mode);
    return plugins / name;
  }

  std::optional<modules::registry> mods;
  std::size_t fds_before = 0, maps_before = 0, files_before = 0;
  std::uint64_t refusals_before = 0;
};

TEST_F(bad_input, missing_descriptor_symbol) {
  expect_refused(install("plugin_no_descriptor"), modules::module_errc::no_descriptor, "does not export hotswap_plugin_entry");
}

TEST_F(bad_input, wrong_abi_version) {
  expect_refused(install("plugin_wrong_abi"), modules::module_errc::abi_mismatch, "ABI version 999");
}

TEST_F(bad_input, wrong_interface_name) {
  expect_refused(install("plugin_wrong_interface"), modules::module_errc::interface_mismatch,
                 "metadata says 'hotswap.other' version 1");
}

TEST_F(bad_input, wrong_interface_version) {
  expect_refused(install("plugin_wrong_interface_version"), modules::module_errc::interface_mismatch,
                 "'hotswap.test' version 2");
}

TEST_F(bad_input, unresolved_symbol_at_load) {
  expect_refused(install("plugin_unresolved"), modules::module_errc::load_failed,
                 "undefined symbol: hotswap_test_symbol_nobody_provides");
}

TEST_F(bad_input, not_an_elf_file) {
  const std::string text = "#!/bin/sh\necho 'not a plugin'\n";
  expect_refused(write_bytes("script.so", std::as_bytes(std::span(text))), modules::module_errc::not_elf, "not an ELF file");
}

TEST_F(bad_input, zero_byte_file) {
  expect_refused(write_bytes("empty.so", {}), modules::module_errc::empty_file, "empty file");
}

TEST_F(bad_input, truncated_elf_header) {
  const auto bytes = bytes_of(built_plugin("test_plugin_v2"));
  expect_refused(write_bytes("stub.so", std::span(bytes).first(40)), modules::module_errc::truncated, "less than an ELF header");
}

TEST_F(bad_input, file_still_being_written) {
  const auto bytes = bytes_of(built_plugin("test_plugin_v2"));
  for (std::size_t part : {bytes.size() / 4, bytes.size() / 2, bytes.size() - 1}) {
    SCOPED_TRACE(part);
    expect_refused(write_bytes("partial.so", std::span(bytes).first(part)), modules::module_errc::truncated, "truncated");
    refusals_before = mods->counters().refusals;
  }
}

TEST_F(bad_input, wrong_machine_and_class) {
  auto bytes = bytes_of(built_plugin("test_plugin_v2"));
  auto other = bytes;
  const std::uint16_t machine = EM_X86_64 == modules::detail::host_elf_machine() ? EM_AARCH64 : EM_X86_64;
  std::memcpy(other.data() + offsetof(ElfW(Ehdr), e_machine), &machine, sizeof machine);
  expect_refused(write_bytes("foreign.so", other), modules::module_errc::wrong_machine, "wrong machine");
  refusals_before = mods->counters().refusals;
  bytes[EI_CLASS] = std::byte{sizeof(void*) == 8 ? ELFCLASS32 : ELFCLASS64};
  expect_refused(write_bytes("class.so", bytes), modules::module_errc::wrong_elf_class, "wrong ELF class");
}

TEST_F(bad_input, file_deleted_between_check_and_load) {
  const fs::path file = install("test_plugin_v2", "vanishing.so");
  on_stage = [&](std::string_view stage, const fs::path& p) {
    if (stage == "open" && p == file) fs::remove(p);  // after the path checks, before open
  };
  expect_refused(file, modules::module_errc::not_found, "No such file");
}

TEST_F(bad_input, file_deleted_after_it_was_read_still_loads_from_its_copy) {
  const fs::path file = install("test_plugin_v2", "vanishing.so");
  on_stage = [&](std::string_view stage, const fs::path& p) {
    if (stage == "read" && p == file) fs::remove(p);
  };
  mods->swap("alice", "calc", file);
  EXPECT_EQ(identify(mods->get<test_api>("calc")), id_of(2, 1));
}

TEST_F(bad_input, permission_denied) {
  const fs::path file = install("test_plugin_v2", "locked.so", 0000);
  if (::geteuid() == 0)  // the kernel lets root read it: our own mode check must refuse it
    RecordProperty("note", "running as root: asserting hotswap's explicit owner-read check");
  expect_refused(file, modules::module_errc::permission_denied, "ermission denied");
}

TEST_F(bad_input, group_or_world_writable_file) {
  expect_refused(install("test_plugin_v2", "group.so", 0664), modules::module_errc::insecure_permissions,
                 "lets group or others write it");
  refusals_before = mods->counters().refusals;
  expect_refused(install("test_plugin_v2", "world.so", 0646), modules::module_errc::insecure_permissions,
                 "lets group or others write it");
}

TEST_F(bad_input, file_owned_by_someone_else) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a file away (chown)";
  const fs::path file = install("test_plugin_v2", "theirs.so");
  ASSERT_EQ(::chown(file.c_str(), 4242, 4242), 0);
  expect_refused(file, modules::module_errc::wrong_owner, "uid 4242");
}

TEST_F(bad_input, symlink_escaping_the_allowed_directory) {
  const fs::path outside = root_ / "outside";
  fs::create_directory(outside);
  write_file(outside / "evil.so", bytes_of(built_plugin("test_plugin_v2")));
  fs::create_symlink(outside / "evil.so", plugins / "innocent.so");
  expect_refused(plugins / "innocent.so", modules::module_errc::outside_allowed_dir, "outside the allowed directory");
  refusals_before = mods->counters().refusals;
  expect_refused(outside / "evil.so", modules::module_errc::outside_allowed_dir, "outside the allowed directory");
  refusals_before = mods->counters().refusals;
  expect_refused(plugins / ".." / "outside" / "evil.so", modules::module_errc::outside_allowed_dir, "outside the allowed");
}

TEST_F(bad_input, symlink_inside_the_allowed_directory_is_fine) {
  fs::create_directory(plugins / "builds");
  write_file(plugins / "builds" / "calc-2.so", bytes_of(built_plugin("test_plugin_v2")));
  fs::create_symlink(plugins / "builds" / "calc-2.so", plugins / "current.so");
  mods->swap("alice", "calc", plugins / "current.so");
  EXPECT_EQ(identify(mods->get<test_api>("calc")), id_of(2, 1));
}

TEST_F(bad_input, not_a_regular_file) {
  fs::create_directory(plugins / "dir.so");
  expect_refused(plugins / "dir.so", modules::module_errc::not_regular_file, "not a regular file");
}

TEST_F(bad_input, hash_not_on_the_allow_list) {
  modules::registry_options o = registry_opts();
  o.loader.policy.sha256_allow = {modules::sha256_hex(std::span<const std::byte>(bytes_of(built_plugin("test_plugin_v1"))))};
  restart(std::move(o));
  expect_refused(install("test_plugin_v2"), modules::module_errc::hash_not_allowed, "is not on the allow list");
}

TEST_F(bad_input, hash_other_than_the_request_expected) {
  const auto sha_of = [&](const char* build) {
    return modules::sha256_hex(std::span<const std::byte>(bytes_of(built_plugin(build))));
  };
  modules::request_options request;
  request.expected_sha256 = sha_of("test_plugin_v1");
  const std::string actual = sha_of("test_plugin_v2");
  expect_refused(install("test_plugin_v2"), modules::module_errc::hash_mismatch,
                 "hash mismatch: sha256 " + actual + ", the request expected " + request.expected_sha256, "alice", "calc",
                 request);
  request.expected_sha256 = actual;  // the bytes it names load
  mods->swap("alice", "calc", install("test_plugin_v2"), std::nullopt, request);
  EXPECT_EQ(identify(mods->get<test_api>("calc")), id_of(2, 1));
}

TEST_F(bad_input, principal_not_allowed_and_unknown_module) {
  modules::registry_options o = registry_opts();
  o.principals = {"alice"};
  restart(std::move(o));
  expect_refused(install("test_plugin_v2"), modules::module_errc::principal_not_allowed, "'mallory' may not change modules",
                 "mallory");
  refusals_before = mods->counters().refusals;
  expect_refused(install("test_plugin_v2"), modules::module_errc::unknown_module, "unknown module 'nope'", "alice", "nope");
}

TEST_F(bad_input, startup_returns_an_error) {
  expect_refused(install("plugin_startup_error"), modules::module_errc::startup_failed,
                 "startup failed: [42] database unreachable");
}

TEST_F(bad_input, startup_throws) {
  expect_refused(install("plugin_startup_throw"), modules::module_errc::startup_failed,
                 "startup failed: [2] startup threw: configuration missing");
}

TEST_F(bad_input, migrate_fails) {
  expect_refused(install("plugin_migrate_fail"), modules::module_errc::migrate_failed,
                 "migrate failed: [2] cannot read the old state: schema too old");
  EXPECT_EQ(log.count(modules::module_event_kind::unloaded), 1U);  // started, then shut down and unloaded
}

TEST_F(bad_input, self_test_fails) {
  expect_refused(install("plugin_self_test_fail"), modules::module_errc::self_test_failed,
                 "self test failed: [2] self test: add(2, 2) returned 5");
  EXPECT_EQ(log.count(modules::module_event_kind::unloaded), 1U);
}

TEST_F(bad_input, a_version_that_never_drains_is_reported_stuck) {
  modules::registry_options o = registry_opts();
  o.loader.drain_deadline = 30ms;
  restart(std::move(o));
  auto calc = mods->get<test_api>("calc");
  const test_api* v1 = nullptr;
  ASSERT_EQ(calc.call([&](const test_api& a) {
              v1 = &a;
              return a.hold_keepalive();  // async work that does not finish
            }),
            1);
  mods->swap("alice", "calc", install("test_plugin_v2"));
  settle();
  EXPECT_FALSE(mods->wait_drained("calc", 1, 100ms));
  const auto stuck = log.of(modules::module_event_kind::stuck);
  ASSERT_EQ(stuck.size(), 1U);
  EXPECT_EQ(stuck[0].from_version, 1U);
  EXPECT_NE(stuck[0].message.find("1 keepalives"), std::string::npos) << stuck[0].message;
  auto status = mods->status("calc");
  ASSERT_EQ(status.size(), 2U);
  EXPECT_EQ(status[0].state, modules::version_state::stuck);
  EXPECT_EQ(status[1].state, modules::version_state::serving);
  EXPECT_EQ(mods->check_drains().size(), 1U);
  EXPECT_EQ(log.count(modules::module_event_kind::stuck), 1U) << "reported once";
  EXPECT_EQ(identify(calc), id_of(2, 1));  // the new version serves meanwhile

  v1->release_keepalive();  // the work ends: the version drains after all
  EXPECT_TRUE(mods->wait_drained("calc", 1, 10s));
  EXPECT_EQ(mods->status("calc")[0].state, modules::version_state::unloaded);
}

}  // namespace
}  // namespace hotswap::testing
