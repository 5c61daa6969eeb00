// The kernel used the way embedders use it, at the edges of its contract:
// thread exit, fork(), deep nesting, throwing values and deleters, manual
// reclamation next to the background thread. Each test names the defect of
// issue #8 it pins down; each failed before its fix.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "../sanitizer.hpp"
#include "typed_policies.hpp"
#include "tracked.hpp"

namespace hotswap::testing {
namespace {

constexpr bool assertions_on = HOTSWAP_ASSERT_DEBUG;  // on in this project's test builds (tests/CMakeLists.txt)

template <class P>
class contract_test : public ::testing::Test {
 protected:
  using domain_type = typename P::domain_type;
  static domain_options manual() {
    domain_options o = P::options();
    o.reclaim = reclaim_mode::manual;
    return o;
  }
};
TYPED_TEST_SUITE(contract_test, all_policy_types, policy_names);

// #5: a thread_local constructed before the thread's first section, whose
// destructor enters the domain and detaches, runs after the per-thread record
// cache was destroyed. It must find a working cache, not a freed one.
template <class Domain>
struct exit_guard {
  Domain* dom = nullptr;
  ~exit_guard() {
    if (dom == nullptr) return;
    dom->lock();
    dom->unlock();
    dom->detach();
  }
};

TYPED_TEST(contract_test, a_thread_local_destructor_may_use_the_domain) {
  using domain_type = typename TestFixture::domain_type;
  domain_type d(TypeParam::options());
  for (int i = 0; i < 4; ++i) {
    std::thread([&] {
      static thread_local exit_guard<domain_type> guard;
      guard.dom = &d;  // constructed above, before this thread's first section
      d.lock();
      d.unlock();
    }).join();
  }
  d.synchronize();  // every exited thread's record was given back
  EXPECT_EQ(d.this_thread().nesting(), 0U);
}

// #6: rounds driven by poll() and by the background thread never overlap, so
// barrier() cannot count a quick round as the one it waits for.
TYPED_TEST(contract_test, barrier_waits_for_every_earlier_deleter_while_others_poll) {
  domain_options o = TypeParam::options();
  o.reclaim_window = std::chrono::nanoseconds(0);
  typename TestFixture::domain_type d(o);
  std::atomic<bool> stop{false};
  std::thread poller([&] {
    for (int i = 0; i < 200000 && !stop.load(); ++i) {
      d.retire(new int(i), [](int* p) { delete p; });
      d.poll();
    }
  });
  int early = 0;
  for (int trial = 0; trial < 40; ++trial) {
    std::atomic<bool> finished{false};
    d.retire(new int(trial), [&finished](int* p) {
      std::this_thread::sleep_for(std::chrono::microseconds(500));  // a slow deleter, to widen the window
      delete p;
      finished.store(true);
    });
    d.barrier();
    if (!finished.load()) ++early;
  }
  stop.store(true);
  poller.join();
  d.barrier();
  EXPECT_EQ(early, 0) << "barrier() returned while a deleter retired before it was still running";
}

// #9: a deleter that calls poll() or barrier() on its own domain.
TYPED_TEST(contract_test, poll_and_barrier_inside_a_deleter_are_defined) {
  for (const reclaim_mode mode : {reclaim_mode::background, reclaim_mode::manual}) {
    domain_options o = TypeParam::options();
    o.reclaim = mode;
    typename TestFixture::domain_type d(o);
    std::atomic<int> polled{-1};
    std::atomic<int> barrier_threw{0};
    d.retire(new int(1), [&](int* p) {
      delete p;
      polled.store(d.poll() ? 1 : 0);
      try {
        d.barrier();
      } catch (const std::logic_error&) {
        barrier_threw.store(1);
      }
    });
    d.barrier();
    EXPECT_EQ(polled.load(), 0) << "poll() inside a deleter does nothing";
    EXPECT_EQ(barrier_threw.load(), 1) << "barrier() inside a deleter throws std::logic_error";
  }
}

// #9: a deleter that throws ends the process with a message, deterministically.
TYPED_TEST(contract_test, a_throwing_deleter_terminates_with_a_message) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        typename TestFixture::domain_type d(TestFixture::manual());
        d.retire(new int(1), [](int* p) {
          delete p;
          throw std::runtime_error("deleter failed");
        });
        d.poll();
      },
      "deleters must not throw");
}

// #9: a value whose move constructor throws consumes no version number.
struct fragile {
  int value;
  bool throw_on_move = false;
  fragile(int v, bool t) : value(v), throw_on_move(t) {}
  fragile(fragile&& o) : value(o.value), throw_on_move(false) {
    if (o.throw_on_move) throw std::runtime_error("move failed");
  }
};

TYPED_TEST(contract_test, a_publish_that_throws_consumes_no_version_number) {
  typename TestFixture::domain_type d(TypeParam::options());
  slot<fragile, typename TestFixture::domain_type> s(d, "first", {}, 1, false);
  const std::uint64_t first = s.current_version();
  EXPECT_THROW(static_cast<void>(s.publish(fragile(2, true))), std::runtime_error);
  EXPECT_EQ(s.current_version(), first);
  const publish_result r = s.publish(fragile(3, false));
  ASSERT_TRUE(r);
  EXPECT_EQ(r.version, first + 1) << "numbers increase by one per publish";
  d.barrier();
  EXPECT_EQ(s.versions().size(), 1U);
}

// #9: max_draining = 0 would refuse every publish forever.
TYPED_TEST(contract_test, max_draining_zero_is_rejected_at_construction) {
  typename TestFixture::domain_type d(TypeParam::options());
  slot_options o;
  o.max_draining = 0;
  EXPECT_THROW((slot<int, typename TestFixture::domain_type>(d, "v", o, 1)), std::invalid_argument);
}

// #9: in debug builds, a reader of another domain passed to a slot is caught.
TYPED_TEST(contract_test, a_reader_of_another_domain_is_caught_in_debug_builds) {
  using domain_type = typename TestFixture::domain_type;
  if (!assertions_on) GTEST_SKIP() << "a debug check (HOTSWAP_ASSERT_DEBUG)";
  domain_type a(TypeParam::options());
  domain_type b(TypeParam::options());
  if (a.owns(b.this_thread())) GTEST_SKIP() << TypeParam::name << " has one process-wide reader per thread";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  slot<int, domain_type> s(a, 1);
  EXPECT_DEATH(s.call(b.this_thread(), [](int v) { return v; }), "reader of another domain");
}

template <class P>
class epoch_contract_test : public ::testing::Test {};
using epoch_policies = ::testing::Types<epoch_membarrier, epoch_fence>;
TYPED_TEST_SUITE(epoch_contract_test, epoch_policies, policy_names);

// #7: the 15-bit depth must never carry into the fence flag.
TYPED_TEST(epoch_contract_test, nesting_past_the_limit_terminates_instead_of_wrapping) {
  domain d(TypeParam::options());
  auto& r = d.this_thread();
  for (std::uint32_t i = 0; i < epoch_grace::max_nesting; ++i) r.lock();
  EXPECT_EQ(r.nesting(), epoch_grace::max_nesting);
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(r.lock(), "nested 32767 deep");
  for (std::uint32_t i = 0; i < epoch_grace::max_nesting; ++i) r.unlock();
  EXPECT_EQ(r.nesting(), 0U);
}

TYPED_TEST(epoch_contract_test, unlock_without_lock_asserts_in_debug_builds) {
  if (!assertions_on) GTEST_SKIP() << "a debug check (HOTSWAP_ASSERT_DEBUG), as liburcu's urcu_assert_debug";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        domain d(TypeParam::options());
        d.this_thread().unlock();
      },
      "without a matching lock");
}

TEST(qsbr_contract_test, unlock_without_lock_asserts_in_debug_builds) {
  if (!assertions_on) GTEST_SKIP() << "a debug check (HOTSWAP_ASSERT_DEBUG)";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        qsbr_domain d;
        d.this_thread().unlock();
      },
      "without a matching lock");
}

// #8: a forked child (a prefork server's worker) gets a working domain: the
// reclaimer runs again, and a section another parent thread had open does
// not block the child's grace periods.
TYPED_TEST(epoch_contract_test, a_forked_child_keeps_publishing_and_reclaiming) {
  if (under_tsan) GTEST_SKIP() << "ThreadSanitizer does not support threads started after a multi-threaded fork";
  domain d(TypeParam::options());
  tracked::counters counters;
  slot<tracked, domain> s(d, "v0", {}, 0, counters);
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(s.publish(tracked(static_cast<std::uint64_t>(i), counters)));
  d.barrier();

  std::atomic<int> phase{0};
  std::thread holder([&] {
    std::scoped_lock section(d);  // open across the fork
    phase.store(1);
    while (phase.load() != 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  while (phase.load() != 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));

  const pid_t child = ::fork();
  ASSERT_NE(child, -1);
  if (child == 0) {
    ::alarm(20);  // a hang in the child becomes a failure, not a stuck test
    int bad = 0;
    for (int i = 0; i < 64; ++i) {  // well past max_draining
      if (!s.publish(tracked(100 + static_cast<std::uint64_t>(i), counters))) bad |= 1;
      d.barrier();
    }
    d.synchronize();
    if (s.draining() != 0) bad |= 2;
    if (s.read()->value != 163) bad |= 4;
    ::_exit(bad);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  phase.store(2);
  holder.join();
  ASSERT_TRUE(WIFEXITED(status)) << "child killed by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  EXPECT_EQ(WEXITSTATUS(status), 0) << "bit 1: publish refused, 2: versions left draining, 4: wrong value";
  // The parent is unaffected.
  ASSERT_TRUE(s.publish(tracked(7, counters)));
  d.barrier();
  EXPECT_EQ(s.draining(), 0U);
}

// #9: detach() under the libcds policy leaves a host's own attachment alone.
TEST(cds_urcu_contract, detach_keeps_an_attachment_the_host_made) {
  cds_urcu_domain d;  // initialises libcds
  std::thread([&] {
    cds::threading::Manager::attachThread();
    d.lock();
    d.unlock();
    d.detach();
    EXPECT_TRUE(cds::threading::Manager::isThreadAttached());
    cds::threading::Manager::detachThread();
  }).join();
}

}  // namespace
}  // namespace hotswap::testing
