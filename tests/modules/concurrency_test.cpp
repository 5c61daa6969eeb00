// Swaps of real plugins under concurrent callers, per call and pinned.
//
// Four builds of one plugin (PLUGIN_VERSION 1..4) are swapped in turn; each
// swap's migrate bumps a generation, so every call returns exactly which
// version answered: (plugin version << 32) | generation. Checked for every call:
//   * it came from a version that was serving at some point during the call
//     (generation within [newest committed before, newest committed after + 1]);
//   * it did not run in a shut-down version (the plugin answers TEST_API_DEAD);
//   * a pinned session sees one version throughout.
// And across 1,000 swaps (250 under the sanitizers, where one swap costs
// about 90 ms instead of 1 ms): fds and mappings do not grow, no copy is left behind.
// Every loop is bounded in count and in time.
#include <array>
#include <atomic>
#include <chrono>
#include <optional>
#include <thread>

#include "fixture.hpp"

namespace hotswap::testing {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr std::uint64_t total_swaps = 250;
#else
constexpr std::uint64_t total_swaps = 1000;
#endif
constexpr auto time_limit = 280s;  // far above a plain run (~1 s); sanitizers are slower

/// The first invariant violation any thread saw; the others are counted.
class failures {
 public:
  void add(std::string what) {
    if (count_.fetch_add(1) == 0) {
      std::lock_guard lock(mutex_);
      first_ = std::move(what);
    }
  }
  std::uint64_t count() const { return count_.load(); }
  std::string first() const {
    std::lock_guard lock(mutex_);
    return first_;
  }

 private:
  std::atomic<std::uint64_t> count_{0};
  mutable std::mutex mutex_;
  std::string first_;
};

/// Checks one answer against the window of generations serving during the call.
void check_answer(failures& f, std::uint64_t value, std::uint64_t lo, std::uint64_t hi) {
  if (value == TEST_API_DEAD) return f.add("a call ran in a version that was already shut down");
  const std::uint64_t generation = value & 0xffffffffU;
  const std::uint64_t version = value >> 32;
  if (version != generation % 4 + 1)
    return f.add("generation " + std::to_string(generation) + " answered from plugin v" + std::to_string(version));
  if (generation < lo || generation > hi + 1)
    return f.add("generation " + std::to_string(generation) + " was not serving during the call [" +
                 std::to_string(lo) + ", " + std::to_string(hi + 1) + "]");
}

class swap_under_load : public module_env, public ::testing::WithParamInterface<modules::shadow_mode> {
 protected:
  std::array<fs::path, 4> install_all() {
    std::array<fs::path, 4> files;
    for (unsigned v = 1; v <= 4; ++v) files[v - 1] = install("test_plugin_v" + std::to_string(v));
    return files;
  }
  std::string mapping_needle() const {
    // memfds are named after the file: other tests' retained versions (other names) stay mapped.
    return GetParam() == modules::shadow_mode::memory ? std::string("memfd:hs.test_plugin_v") : shadow.string();
  }
  /// Waits (bounded) until only the serving version is left.
  void drain_all(modules::basic_module_slot<>& s) {
    settle();
    for (const modules::version_report& r : s.versions())
      if (r.state != modules::version_state::serving) {
        EXPECT_TRUE(s.wait_drained(r.number, 30s)) << "version " << r.number;
      }
  }
  /// Swaps, waiting out backpressure (bounded).
  template <class Swap>
  bool swap_with_retry(Swap&& swap, failures& f) {
    for (int attempt = 0; attempt < 1000; ++attempt) {
      try {
        swap();
        return true;
      } catch (const modules::module_error& e) {
        if (e.code() != modules::module_errc::backpressure) {
          f.add(std::string("swap failed: ") + e.what());
          return false;
        }
        settle();  // let the reclaimer catch up; pins here are short-lived
      }
    }
    f.add("backpressure did not clear");
    return false;
  }
};

TEST_P(swap_under_load, callers_only_ever_see_serving_versions_and_nothing_grows) {
  const auto files = install_all();
  auto loader = make_loader(GetParam());
  std::optional<modules::module_slot<test_api>> calc;
  calc.emplace(dom, loader, "calc", files[0]);
  settle();
  const std::size_t fds0 = open_fds();
  const std::size_t mapped0 = mapped_files(mapping_needle()).size();
  const std::size_t copies0 = files_in(shadow);
  ASSERT_EQ(mapped0, 1U);

  std::atomic<std::uint64_t> committed{0};  // generation of the newest swap that returned
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> calls{0}, sessions{0};
  failures f;

  auto per_call = [&] {
    auto& r = dom.this_thread();  // hot callers hold their reader
    for (std::uint64_t n = 0; n < 200'000'000 && !done.load(std::memory_order_relaxed); ++n) {
      const std::uint64_t lo = committed.load(std::memory_order_acquire);  // pairs with the swapper's release
      const std::uint64_t v = calc->call(r, [](const test_api& a) { return a.identify(); });
      const std::uint64_t hi = committed.load(std::memory_order_acquire);
      check_answer(f, v, lo, hi);
      calls.fetch_add(1, std::memory_order_relaxed);
    }
  };
  auto pinned = [&] {
    for (std::uint64_t n = 0; n < 10'000'000 && !done.load(std::memory_order_relaxed); ++n) {
      const std::uint64_t lo = committed.load(std::memory_order_acquire);  // pairs with the swapper's release
      auto session = calc->pin();
      const std::uint64_t hi = committed.load(std::memory_order_acquire);
      const std::uint64_t first = session->identify();
      check_answer(f, first, lo, hi);
      for (int i = 0; i < 50; ++i)
        if (session->identify() != first) f.add("a pinned session changed version");
      sessions.fetch_add(1, std::memory_order_relaxed);
    }
  };
  std::vector<std::thread> threads;
  threads.emplace_back(per_call);
  threads.emplace_back(per_call);
  threads.emplace_back(pinned);

  const auto deadline = clock_type::now() + time_limit;
  std::uint64_t swapped = 0;
  std::size_t max_mapped = 0;
  while (swapped < total_swaps && clock_type::now() < deadline && f.count() == 0) {
    const std::uint64_t next = swapped + 1;
    if (!swap_with_retry([&] { calc->swap(files[next % 4]); }, f)) break;
    committed.store(next, std::memory_order_release);  // pairs with the callers' acquire
    swapped = next;
    if (swapped % 50 == 0) max_mapped = std::max(max_mapped, mapped_files(mapping_needle()).size());
  }
  done.store(true);
  for (auto& t : threads) t.join();

  EXPECT_EQ(swapped, total_swaps) << "time limit hit";
  EXPECT_EQ(f.count(), 0U) << f.first();
  EXPECT_GT(calls.load(), 0U);
  EXPECT_GT(sessions.load(), 0U);
  EXPECT_EQ(identify(*calc), id_of(static_cast<unsigned>(swapped % 4 + 1), swapped));
  EXPECT_LE(max_mapped, slot_options{}.max_draining + 2) << "mapped versions must stay bounded";

  drain_all(*calc);
  EXPECT_EQ(open_fds(), fds0) << "file descriptors grew across " << swapped << " swaps";
  EXPECT_EQ(mapped_files(mapping_needle()).size(), mapped0) << "mappings grew across " << swapped << " swaps";
  EXPECT_EQ(files_in(shadow), copies0);
  EXPECT_EQ(loader->stats().unloaded, swapped);
  EXPECT_EQ(log.count(modules::module_event_kind::stayed_mapped), 0U);

  calc.reset();
  settle();
  EXPECT_EQ(files_in(shadow), 0U) << "a shadow copy was left behind";
  EXPECT_EQ(mapped_files(mapping_needle()).size(), 0U);
  EXPECT_EQ(open_fds(), fds0 - (GetParam() == modules::shadow_mode::memory ? 1 : 0));
  std::printf("[          ] %llu swaps, %llu per-call calls, %llu pinned sessions, max %zu versions mapped\n",
              static_cast<unsigned long long>(swapped), static_cast<unsigned long long>(calls.load()),
              static_cast<unsigned long long>(sessions.load()), max_mapped);
}

INSTANTIATE_TEST_SUITE_P(modes, swap_under_load, ::testing::Values(modules::shadow_mode::file, modules::shadow_mode::memory),
                         [](const auto& info) { return info.param == modules::shadow_mode::file ? "file" : "memfd"; });

class registry_under_load : public swap_under_load {};

TEST_P(registry_under_load, sessions_follow_the_policy_switched_while_swapping) {
  const auto files = install_all();
  std::optional<modules::registry> mods;
  mods.emplace(dom, registry_opts(GetParam()));
  mods->add<test_api>("ops", "calc", files[0]);

  std::atomic<std::uint64_t> committed{0};
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> pinned_sessions{0}, per_call_sessions{0};
  failures f;
  auto caller = [&] {
    for (std::uint64_t n = 0; n < 10'000'000 && !done.load(std::memory_order_relaxed); ++n) {
      const std::uint64_t lo = committed.load(std::memory_order_acquire);  // pairs with the swapper's release
      auto session = mods->open_session<test_api>("calc");
      std::uint64_t first = 0;
      for (int i = 0; i < 20; ++i) {
        const std::uint64_t v = session.call([](const test_api& a) { return a.identify(); });
        const std::uint64_t hi = committed.load(std::memory_order_acquire);
        check_answer(f, v, lo, hi);
        if (i == 0) first = v;
        if (session.policy() == call_policy::pinned && v != first) f.add("a pinned session changed version");
      }
      (session.policy() == call_policy::pinned ? pinned_sessions : per_call_sessions).fetch_add(1);
    }
  };
  std::thread a(caller), b(caller);

  constexpr std::uint64_t swaps = 200;
  const auto deadline = clock_type::now() + time_limit;
  std::uint64_t swapped = 0;
  while (swapped < swaps && clock_type::now() < deadline && f.count() == 0) {
    const std::uint64_t next = swapped + 1;
    if (next % 20 == 0)
      mods->set_policy("calc", mods->policy("calc") == call_policy::pinned ? call_policy::per_call : call_policy::pinned);
    if (!swap_with_retry([&] { mods->swap("ops", "calc", files[next % 4]); }, f)) break;
    committed.store(next, std::memory_order_release);  // pairs with the callers' acquire
    swapped = next;
  }
  done.store(true);
  a.join();
  b.join();

  EXPECT_EQ(swapped, swaps);
  EXPECT_EQ(f.count(), 0U) << f.first();
  EXPECT_GT(pinned_sessions.load(), 0U);
  EXPECT_GT(per_call_sessions.load(), 0U);
  EXPECT_EQ(mods->counters().swaps, swaps + 1);
  EXPECT_EQ(log.count(modules::module_event_kind::swapped), swaps + 1);
  mods.reset();
  settle();
  EXPECT_EQ(files_in(shadow), 0U);
  EXPECT_EQ(log.count(modules::module_event_kind::unloaded), swaps + 1);
}

INSTANTIATE_TEST_SUITE_P(modes, registry_under_load, ::testing::Values(modules::shadow_mode::file),
                         [](const auto&) { return std::string("file"); });

}  // namespace
}  // namespace hotswap::testing
