// The adversarial tests' fixture (adversarial_test.cpp, containment_test.cpp):
// a registry serving test_plugin_v1 as "calc", refusals checked with their
// code, cause, count and log line, and crash-shaped cases run in a process of
// their own (IN_OWN_PROCESS), so a regression fails one test instead of
// killing the suite.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "fixture.hpp"

namespace hotswap::testing {

using namespace std::chrono_literals;

/// Runs `body` in a fresh copy of this test's process (gtest's threadsafe
/// death-test style re-executes the binary); passes if it ends normally with
/// no failed expectation.
template <class Body>
void in_own_process(Body&& body) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT((body(), std::fflush(nullptr), std::_Exit(::testing::Test::HasFailure() ? 1 : 0)),
              ::testing::ExitedWithCode(0), "");
}
#define IN_OWN_PROCESS(...) in_own_process([&] { __VA_ARGS__; })

inline std::size_t threads_now() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/task")) ++n;
  return n;
}

/// The bytes of `head` up to `cut`, then those of `tail` from `cut` on: an
/// upload of `head` caught half-way over `tail` (rsync --inplace, a slow scp).
inline std::vector<std::byte> caught_half_way(const std::vector<std::byte>& head, const std::vector<std::byte>& tail,
                                       std::size_t cut) {
  std::vector<std::byte> out(tail);
  std::copy(head.begin(), head.begin() + static_cast<std::ptrdiff_t>(std::min(cut, head.size())), out.begin());
  return out;
}

inline std::uint64_t seal_at(const std::vector<std::byte>& bytes) {
  modules::detail::elf_facts facts;
  EXPECT_FALSE(modules::detail::check_elf(bytes, &facts).has_value());
  return modules::detail::seal_offset(facts.metadata_offset.value_or(0));
}

class adversarial : public module_env {
 protected:
  /// A registry serving test_plugin_v1 as "calc".
  void start(modules::registry_options o) {
    mods.emplace(dom, std::move(o));
    mods->add<test_api>("ops", "calc", install("test_plugin_v1"));
    ASSERT_EQ(identify(mods->get<test_api>("calc")), id_of(1, 0));
  }
  void start(modules::shadow_mode mode = modules::shadow_mode::file) { start(registry_opts(mode)); }

  /// `request` must be refused with `code` (and `cause` in the message); then
  /// the refusal is logged and counted and version 1 still serves.
  template <class Request>
  void expect_refused(Request&& request, modules::module_errc code, const std::string& cause) {
    const auto refusals = mods->counters().refusals;
    const auto logged = log.count(modules::module_event_kind::refused);
    try {
      request();
      ADD_FAILURE() << "accepted";
    } catch (const modules::module_error& e) {
      EXPECT_EQ(e.code(), code) << e.what();
      EXPECT_NE(std::string(e.what()).find(cause), std::string::npos) << "expected '" << cause << "' in: " << e.what();
    }
    EXPECT_EQ(mods->counters().refusals, refusals + 1);
    EXPECT_EQ(log.count(modules::module_event_kind::refused), logged + 1);
    expect_v1_serves();
  }
  void expect_refused_swap(const fs::path& file, modules::module_errc code, const std::string& cause) {
    expect_refused([&] { mods->swap("alice", "calc", file); }, code, cause);
  }
  void expect_v1_serves() {
    EXPECT_EQ(identify(mods->get<test_api>("calc")), id_of(1, 0)) << "the serving version must keep serving";
    EXPECT_EQ(mods->module("calc").current_version(), 1U);
  }
  fs::path write_plugin(const std::string& name, const std::vector<std::byte>& bytes, mode_t mode = 0644) {
    write_file(plugins / name, bytes, mode);
    return plugins / name;
  }
  modules::registry_options with_preflight(std::chrono::milliseconds deadline = 10s) {
    modules::registry_options o = registry_opts();
    o.preflight = true;
    o.loader.preflight.deadline = deadline;
    return o;
  }

  std::optional<modules::registry> mods;
};

}  // namespace hotswap::testing
