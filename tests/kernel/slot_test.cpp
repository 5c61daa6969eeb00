// slot and pin, against every policy: unit behaviour and concurrent invariants.
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "typed_policies.hpp"
#include "tracked.hpp"

namespace hotswap::testing {
namespace {

template <class P>
class slot_test : public ::testing::Test {
 protected:
  using domain_type = typename P::domain_type;
  using slot_type = slot<tracked, domain_type>;
  domain_type dom{P::options()};
  tracked::counters counters;
};
TYPED_TEST_SUITE(slot_test, all_policy_types, policy_names);

TYPED_TEST(slot_test, publish_replaces_and_numbers_increase) {
  typename TestFixture::slot_type s(this->dom, "first", {}, 10, this->counters);
  auto first = s.read().version();
  EXPECT_EQ(first.label, "first");
  EXPECT_EQ(s.read()->value, 10U);
  auto r = s.publish(tracked(20, this->counters), "second");
  ASSERT_TRUE(r);
  EXPECT_EQ(r.version, first.number + 1);
  EXPECT_EQ(s.read()->value, 20U);
  EXPECT_EQ(s.read().version().label, "second");
  EXPECT_EQ(s.current_version(), r.version);
  EXPECT_EQ(s.call([](const tracked& t) { return t.value; }), 20U);
}

TYPED_TEST(slot_test, replaced_version_is_destroyed_on_the_reclaimer) {
  this->counters.callers_must_not_destroy = std::this_thread::get_id();
  {
    typename TestFixture::slot_type s(this->dom, "v0", {}, 0, this->counters);
    for (std::uint64_t i = 1; i <= 10; ++i) ASSERT_TRUE(s.publish(tracked(i, this->counters)));
    this->dom.barrier();
    EXPECT_EQ(this->counters.destroyed.load(), 10U);  // all but the serving one
    EXPECT_EQ(s.draining(), 0U);
  }
  this->dom.barrier();  // the slot's destructor retired the last one
  EXPECT_EQ(this->counters.destroyed.load(), this->counters.created.load());
  EXPECT_EQ(this->counters.destroyed_on_wrong_thread.load(), 0U);
}

TYPED_TEST(slot_test, compare_and_publish_detects_a_concurrent_edit) {
  typename TestFixture::slot_type s(this->dom, "v0", {}, 0, this->counters);
  const auto base = s.current_version();
  ASSERT_TRUE(s.compare_and_publish(base, tracked(1, this->counters), "edit A"));
  tracked edit_b(2, this->counters);
  auto r = s.compare_and_publish(base, std::move(edit_b), "edit B");
  EXPECT_EQ(r.status, publish_status::conflict);
  EXPECT_EQ(r.version, base + 1);
  EXPECT_EQ(edit_b.value, 2U);            // not consumed: nothing lost
  ASSERT_NE(edit_b.stats, nullptr);
  EXPECT_EQ(s.read()->value, 1U);         // edit A stands
  EXPECT_TRUE(s.compare_and_publish(r.version, std::move(edit_b), "edit B rebased"));
  EXPECT_EQ(s.read()->value, 2U);
}

TYPED_TEST(slot_test, pin_keeps_its_version_until_released) {
  this->counters.callers_must_not_destroy = std::this_thread::get_id();
  typename TestFixture::slot_type s(this->dom, "v0", {}, 0, this->counters);
  auto session = s.pin();
  auto copy = session;  // a second holder of the same version
  ASSERT_TRUE(s.publish(tracked(1, this->counters)));
  ASSERT_TRUE(s.publish(tracked(2, this->counters)));
  this->dom.barrier();
  EXPECT_EQ(this->counters.destroyed.load(), 1U);  // v1 went; v0 is pinned
  EXPECT_TRUE(session.alive());
  EXPECT_EQ(session->value, 0U);
  EXPECT_EQ(s.read()->value, 2U);

  auto listed = s.versions();
  ASSERT_EQ(listed.size(), 2U);
  EXPECT_EQ(listed[0].info.number, session.version().number);
  EXPECT_FALSE(listed[0].serving);
  EXPECT_EQ(listed[0].pins, 2U);
  EXPECT_TRUE(listed[1].serving);
  EXPECT_EQ(listed[1].pins, 0U);

  session.reset();
  this->dom.barrier();
  EXPECT_TRUE(copy.alive());
  EXPECT_EQ(this->counters.destroyed.load(), 1U);
  copy.reset();      // last pin: hands v0 to the reclaimer, does not destroy here
  this->dom.barrier();
  EXPECT_EQ(this->counters.destroyed.load(), 2U);
  EXPECT_EQ(this->counters.destroyed_on_wrong_thread.load(), 0U);
  EXPECT_EQ(s.versions().size(), 1U);
}

TYPED_TEST(slot_test, pin_outlives_its_slot) {
  std::optional<pin<tracked, typename TestFixture::domain_type>> held;
  {
    typename TestFixture::slot_type s(this->dom, "v0", {}, 5, this->counters);
    held = s.pin();
  }
  this->dom.barrier();
  ASSERT_TRUE(held->alive());
  EXPECT_EQ((*held)->value, 5U);
  held.reset();
  this->dom.barrier();
  EXPECT_EQ(this->counters.destroyed.load(), this->counters.created.load());
}

TYPED_TEST(slot_test, backpressure_engages_at_the_cap_and_loses_nothing) {
  slot_options o;
  o.max_draining = 3;
  typename TestFixture::slot_type s(this->dom, "v0", o, 0, this->counters);
  std::vector<pin<tracked, typename TestFixture::domain_type>> pins;
  pins.push_back(s.pin());
  for (std::uint64_t i = 1; i <= 3; ++i) {
    ASSERT_TRUE(s.publish(tracked(i, this->counters)));
    pins.push_back(s.pin());  // every replaced version stays pinned
  }
  EXPECT_EQ(s.draining(), 3U);
  tracked refused(4, this->counters);
  auto r = s.publish(std::move(refused));
  EXPECT_EQ(r.status, publish_status::backpressure);
  EXPECT_EQ(r.version, s.current_version());
  ASSERT_NE(refused.stats, nullptr);  // still ours
  pins.clear();
  this->dom.barrier();
  EXPECT_EQ(s.draining(), 0U);
  EXPECT_TRUE(s.publish(std::move(refused)));
  EXPECT_EQ(s.read()->value, 4U);
}

// Issue #20: a writer that prefers waiting to refusal. With manual
// reclamation nobody else drains the slot: publish_until must drive the
// rounds itself, then publish.
TYPED_TEST(slot_test, publish_until_waits_for_room_then_publishes) {
  domain_options manual = TypeParam::options();
  manual.reclaim = reclaim_mode::manual;
  typename TestFixture::domain_type d(manual);
  slot_options o;
  o.max_draining = 2;
  typename TestFixture::slot_type s(d, "v0", o, 0, this->counters);
  ASSERT_TRUE(s.publish(tracked(1, this->counters)));
  ASSERT_TRUE(s.publish(tracked(2, this->counters)));
  ASSERT_EQ(s.publish(tracked(3, this->counters)).status, publish_status::backpressure);
  const publish_result r =
      s.publish_until(tracked(3, this->counters), std::chrono::steady_clock::now() + std::chrono::minutes(1), "v3");
  ASSERT_TRUE(r);
  EXPECT_EQ(s.read()->value, 3U);
  EXPECT_EQ(s.read().version().label, "v3");
}

// ...and gives up at its deadline when pins hold the cap, leaving the value untouched.
TYPED_TEST(slot_test, publish_until_answers_backpressure_at_its_deadline) {
  slot_options o;
  o.max_draining = 1;
  typename TestFixture::slot_type s(this->dom, "v0", o, 0, this->counters);
  auto old = s.pin();
  ASSERT_TRUE(s.publish(tracked(1, this->counters)));
  tracked refused(2, this->counters);
  const publish_result r =
      s.publish_until(std::move(refused), std::chrono::steady_clock::now() + std::chrono::milliseconds(20));
  EXPECT_EQ(r.status, publish_status::backpressure);
  EXPECT_EQ(r.version, s.current_version());
  ASSERT_NE(refused.stats, nullptr);  // still ours
}

// Issue #26: with a background reclaimer a refused writer sleeps until a
// replaced version is destroyed (here: when the pin holding the cap goes, on
// another thread), then finds room. A wake lost between its check and its
// sleep would leave it asleep to its one-minute deadline and fail the test's
// timeout; a qsbr writer that stayed online while asleep would hold up the
// very grace period it waits for.
TYPED_TEST(slot_test, wait_for_room_wakes_when_a_replaced_version_is_destroyed) {
  slot_options o;
  o.max_draining = 1;
  typename TestFixture::slot_type s(this->dom, "v0", o, 0, this->counters);
  for (int round = 0; round < 20; ++round) {
    ASSERT_TRUE(s.wait_for_room(std::chrono::steady_clock::now() + std::chrono::minutes(1)));  // the last round's
    auto old = s.pin();
    ASSERT_TRUE(s.publish(tracked(1, this->counters)));
    ASSERT_EQ(s.publish(tracked(2, this->counters)).status, publish_status::backpressure);
    std::thread releaser([p = std::move(old)]() mutable {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      p.reset();  // the replaced version may now be destroyed, which wakes the writer
    });
    EXPECT_TRUE(s.wait_for_room(std::chrono::steady_clock::now() + std::chrono::minutes(1)));
    releaser.join();
    EXPECT_TRUE(s.publish(tracked(3, this->counters)));
    ASSERT_TRUE(s.publish_until(tracked(4, this->counters), std::chrono::steady_clock::now() + std::chrono::minutes(1)));
  }
}

// ...and never waits for the calling thread's own read section: a grace
// period would wait for that very section (this test would hang).
TYPED_TEST(slot_test, publish_until_inside_a_read_section_does_not_wait_for_it) {
  domain_options manual = TypeParam::options();
  manual.reclaim = reclaim_mode::manual;
  typename TestFixture::domain_type d(manual);
  slot_options o;
  o.max_draining = 1;
  typename TestFixture::slot_type s(d, "v0", o, 0, this->counters);
  ASSERT_TRUE(s.publish(tracked(1, this->counters)));
  {
    std::lock_guard section(d);
    const publish_result r =
        s.publish_until(tracked(2, this->counters), std::chrono::steady_clock::now() + std::chrono::hours(1));
    EXPECT_EQ(r.status, publish_status::backpressure);
  }
  d.barrier();
  EXPECT_TRUE(s.publish(tracked(2, this->counters)));
}

// Concurrent invariants: R per-call readers, P pinned sessions, W writers, for a
// bounded time and count. Every call checks the canary of the version it runs
// in; per thread, version numbers never go backwards; a pinned session sees one
// version throughout; calls issued == calls completed; at the end every
// replaced version was destroyed exactly once.
TYPED_TEST(slot_test, concurrent_swaps_keep_every_invariant) {
  using namespace std::chrono;
  slot_options o;
  o.max_draining = 64;
  typename TestFixture::slot_type s(this->dom, "v0", o, 0, this->counters);
  constexpr int per_call_readers = 2, pinned_readers = 1, writers = 2;
  constexpr auto budget = milliseconds(300);
  constexpr std::uint64_t max_publishes = 20000;
  const auto deadline = steady_clock::now() + budget;
  // On a starved machine (sanitizers, a loaded CI host) the budget can pass
  // before a writer got one publish through; writers then go on until they
  // have published a few, up to a hard limit that only a hang reaches.
  constexpr std::uint64_t min_publishes = 8;
  const auto hard_deadline = steady_clock::now() + std::chrono::seconds(60);

  std::atomic<std::uint64_t> issued{0}, completed{0}, dead_seen{0}, went_back{0}, pinned_changed{0};
  std::atomic<std::uint64_t> publishes{0}, refused{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < per_call_readers; ++t)
    threads.emplace_back([&] {
      auto& r = this->dom.this_thread();
      std::uint64_t last = 0, n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        issued.fetch_add(1, std::memory_order_relaxed);
        s.call(r, [&](const tracked& v) {
          if (!v.alive()) dead_seen.fetch_add(1);
          if (v.value < last) went_back.fetch_add(1);
          last = v.value;
        });
        completed.fetch_add(1, std::memory_order_relaxed);
        if ((++n & 255) == 0) {
          quiescent_point(r);
          std::this_thread::yield();
        }
      }
    });
  for (int t = 0; t < pinned_readers; ++t)
    threads.emplace_back([&] {
      auto& r = this->dom.this_thread();
      while (!stop.load(std::memory_order_relaxed)) {
        auto session = s.pin(r);
        const std::uint64_t value = session->value;
        for (int call = 0; call < 200; ++call) {
          if (!session.alive()) dead_seen.fetch_add(1);
          if (session->value != value) pinned_changed.fetch_add(1);
          if (call == 100) quiescent_point(r);  // a pin is no read section: it survives this
        }
      }
    });
  for (int t = 0; t < writers; ++t)
    threads.emplace_back([&] {
      while (publishes.load() < max_publishes &&
             (steady_clock::now() < deadline || (publishes.load() < min_publishes && steady_clock::now() < hard_deadline))) {
        // Each value is one more than the one it replaces, so values grow
        // with versions and "never backwards" is checkable on values.
        std::uint64_t base = 0, value = 0;
        {
          auto current = s.read();
          base = current.version().number;
          value = current->value;
        }
        quiescent_point(this->dom.this_thread());
        tracked next(value + 1, this->counters);
        auto r = s.compare_and_publish(base, std::move(next));
        if (r) {
          publishes.fetch_add(1);
        } else if (r.status == publish_status::backpressure) {
          refused.fetch_add(1);
          std::this_thread::yield();
        }
      }
    });
  for (int t = per_call_readers + pinned_readers; t < static_cast<int>(threads.size()); ++t) threads[t].join();
  stop.store(true);
  for (int t = 0; t < per_call_readers + pinned_readers; ++t) threads[t].join();

  EXPECT_GE(publishes.load(), min_publishes);
  EXPECT_EQ(issued.load(), completed.load());
  EXPECT_EQ(dead_seen.load(), 0U);
  EXPECT_EQ(went_back.load(), 0U);
  EXPECT_EQ(pinned_changed.load(), 0U);
  EXPECT_EQ(s.read()->value, publishes.load());
  this->dom.barrier();
  EXPECT_EQ(s.draining(), 0U);
  // Everything created was destroyed except the serving version.
  EXPECT_EQ(this->counters.destroyed.load() + 1, this->counters.created.load());
}

}  // namespace
}  // namespace hotswap::testing
