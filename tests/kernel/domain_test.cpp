// The domain's verbs, against every policy.
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "typed_policies.hpp"
#include "tracked.hpp"

namespace hotswap::testing {
namespace {

template <class P>
class domain_test : public ::testing::Test {
 protected:
  using domain_type = typename P::domain_type;
};
TYPED_TEST_SUITE(domain_test, all_policy_types, policy_names);

TYPED_TEST(domain_test, read_sections_nest) {
  typename TypeParam::domain_type d(TypeParam::options());
  auto& r = d.this_thread();
  r.lock();
  r.lock();
  EXPECT_EQ(r.nesting(), 2U);
  r.unlock();
  EXPECT_EQ(r.nesting(), 1U);
  r.unlock();
  EXPECT_EQ(r.nesting(), 0U);
  d.synchronize();  // would hang if the outer unlock had not ended the section
}

TYPED_TEST(domain_test, domain_is_basic_lockable) {
  typename TypeParam::domain_type d(TypeParam::options());
  {
    std::scoped_lock section(d);
    EXPECT_EQ(d.this_thread().nesting(), 1U);
  }
  EXPECT_EQ(d.this_thread().nesting(), 0U);
}

TYPED_TEST(domain_test, synchronize_inside_a_read_section_is_an_error) {
  typename TypeParam::domain_type d(TypeParam::options());
  std::scoped_lock section(d);
  EXPECT_THROW(d.synchronize(), std::logic_error);
  EXPECT_THROW(d.barrier(), std::logic_error);
}

TYPED_TEST(domain_test, retire_runs_deleter_on_the_reclaimer_after_barrier) {
  typename TypeParam::domain_type d(TypeParam::options());
  std::atomic<int> ran{0};
  std::atomic<int> ran_on_caller{0};
  const auto caller = std::this_thread::get_id();
  for (int i = 0; i < 100; ++i)
    d.retire(new int(i), [&](int* p) {
      if (std::this_thread::get_id() == caller) ran_on_caller.fetch_add(1);
      delete p;
      ran.fetch_add(1);
    });
  d.barrier();
  EXPECT_EQ(ran.load(), 100);
  EXPECT_EQ(ran_on_caller.load(), 0);
  EXPECT_EQ(d.backlog(), 0U);
}

TYPED_TEST(domain_test, deleter_waits_for_a_reader_that_was_inside) {
  typename TypeParam::domain_type d(TypeParam::options());
  std::atomic<bool> inside{false}, retired{false};
  std::atomic<int> deleted{0}, deleted_while_inside{0};
  std::thread reader([&] {
    auto& r = d.this_thread();
    r.lock();
    inside.store(true);
    while (!retired.load()) std::this_thread::yield();
    for (int i = 0; i < 2000; ++i) std::this_thread::yield();  // stay a while
    inside.store(false);  // before unlock: the deleter may run right after it
    r.unlock();
  });
  while (!inside.load()) std::this_thread::yield();
  d.retire(new int(7), [&](int* p) {
    if (inside.load()) deleted_while_inside.fetch_add(1);
    delete p;
    deleted.fetch_add(1);
  });
  retired.store(true);
  d.barrier();
  EXPECT_EQ(deleted.load(), 1);
  EXPECT_EQ(deleted_while_inside.load(), 0);
  reader.join();
}

TYPED_TEST(domain_test, manual_reclaim_runs_only_when_driven) {
  domain_options o = TypeParam::options();
  o.reclaim = reclaim_mode::manual;
  typename TypeParam::domain_type d(o);
  std::atomic<int> ran{0};
  d.retire(new int(1), [&](int* p) { delete p; ran.fetch_add(1); });
  EXPECT_EQ(ran.load(), 0);  // no reclaimer thread exists to run it
  EXPECT_EQ(d.backlog(), 1U);
  EXPECT_TRUE(d.poll());
  EXPECT_EQ(ran.load(), 1);
  EXPECT_FALSE(d.poll());
  d.retire(new int(2), [&](int* p) { delete p; ran.fetch_add(1); });
  d.barrier();
  EXPECT_EQ(ran.load(), 2);
}

TYPED_TEST(domain_test, exited_threads_do_not_block_grace_periods) {
  // Threads that registered (a read section takes a record) and exited must
  // not count for later grace periods. A record left behind makes
  // synchronize() wait for ever, so it runs on a writer thread and the test
  // fails when that has not returned in 30 s (microseconds when correct),
  // instead of hanging until CTest's timeout.
  auto d = std::make_unique<typename TypeParam::domain_type>(TypeParam::options());
  for (int round = 0; round < 3; ++round) {
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([dom = d.get()] {
        std::scoped_lock section(*dom);
      });
    for (auto& t : threads) t.join();
    auto synchronized = std::make_shared<std::atomic<bool>>(false);
    std::thread writer([dom = d.get(), synchronized] {
      dom->synchronize();
      synchronized->store(true);
    });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!synchronized->load() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    if (!synchronized->load()) {
      ADD_FAILURE() << "synchronize() still waits 30 s after round " << round << "'s threads exited";
      writer.detach();  // stuck on the domain: leave both behind
      static_cast<void>(d.release());
      return;
    }
    writer.join();
  }
}

TYPED_TEST(domain_test, detach_gives_the_record_back_and_attach_takes_one) {
  typename TypeParam::domain_type d(TypeParam::options());
  auto& first = d.attach();
  d.lock();
  EXPECT_THROW(d.detach(), std::logic_error);
  d.unlock();
  d.detach();
  // Another thread now gets the freed record instead of a new one.
  typename TypeParam::domain_type::reader* seen = nullptr;
  std::thread([&] { seen = &d.attach(); }).join();
  EXPECT_EQ(seen, &first);
  d.synchronize();  // neither the detached nor the exited thread blocks it
}

TYPED_TEST(domain_test, retire_from_many_threads_then_barrier) {
  typename TypeParam::domain_type d(TypeParam::options());
  std::atomic<int> ran{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        { std::scoped_lock section(d); }
        d.retire(new int(i), [&](int* p) { delete p; ran.fetch_add(1); });
      }
    });
  for (auto& t : threads) t.join();
  d.barrier();
  EXPECT_EQ(ran.load(), 2000);
}

TYPED_TEST(domain_test, destructor_drains_pending_retires) {
  std::atomic<int> ran{0};
  {
    domain_options o = TypeParam::options();
    o.reclaim = reclaim_mode::manual;
    typename TypeParam::domain_type d(o);
    for (int i = 0; i < 10; ++i) d.retire(new int(i), [&](int* p) { delete p; ran.fetch_add(1); });
  }
  EXPECT_EQ(ran.load(), 10);
}

// domain_options::batch_reclaimer: deleters run under SCHED_BATCH (a woken
// reclaimer never preempts a busy caller); turned off, under the policy the
// reclaimer inherited.
TYPED_TEST(domain_test, the_reclaimer_runs_under_sched_batch_unless_told_not_to) {
  if (::sched_getscheduler(0) != SCHED_OTHER) GTEST_SKIP() << "this test runs under a policy other than SCHED_OTHER";
  for (const bool batch : {true, false}) {
    domain_options o = TypeParam::options();
    o.batch_reclaimer = batch;
    typename TypeParam::domain_type d(o);
    std::atomic<int> policy{-1};
    d.retire(new int(1), [&](int* p) {
      delete p;
      policy.store(::sched_getscheduler(0));
    });
    d.barrier();
    EXPECT_EQ(policy.load(), batch ? SCHED_BATCH : SCHED_OTHER) << (batch ? "batch_reclaimer on" : "off");
  }
}

TYPED_TEST(domain_test, the_background_reclaimer_is_named) {
  typename TypeParam::domain_type d(TypeParam::options());
  std::string name;
  d.retire(new int(1), [&](int* p) {
    delete p;
    char buf[16] = {};
    ::pthread_getname_np(::pthread_self(), buf, sizeof buf);
    name = buf;
  });
  d.barrier();
  EXPECT_EQ(name, "hs-reclaim");
}

TYPED_TEST(domain_test, two_domains_on_one_thread_are_independent) {
  typename TypeParam::domain_type a(TypeParam::options());
  typename TypeParam::domain_type b(TypeParam::options());
  std::scoped_lock in_a(a);
  EXPECT_EQ(b.this_thread().nesting(), 0U);
  if constexpr (!std::is_same_v<TypeParam, cds_urcu>) {
    b.synchronize();  // not inside b: must not throw or wait for ourselves
  }
}

// ---- epoch_grace specifics -------------------------------------------------

TEST(epoch_grace, modes_can_be_forced) {
  domain_options fence;
  fence.grace = grace_mode::fence;
  EXPECT_FALSE(domain(fence).grace().uses_membarrier());
  domain_options automatic;
  domain d(automatic);
  if (d.grace().uses_membarrier()) {
    domain_options forced;
    forced.grace = grace_mode::membarrier;
    EXPECT_TRUE(domain(forced).grace().uses_membarrier());
  }
}

TEST(epoch_grace, busy_reader_ends_grace_periods_without_membarrier) {
  domain_options o;
  o.grace = grace_mode::membarrier;
  o.membarrier_after = std::chrono::seconds(5);  // a membarrier would only come after 5 s
  domain d(o);
  std::atomic<bool> stop{false};
  std::atomic<bool> started{false};
  std::thread busy([&] {
    auto& r = d.this_thread();
    while (!stop.load(std::memory_order_relaxed)) {
      r.lock();
      started.store(true, std::memory_order_relaxed);
      r.unlock();
    }
  });
  while (!started.load()) std::this_thread::yield();
  // Unregistered main thread: the only record is the busy reader's, which
  // shows each new epoch within one section.
  const auto before = d.grace_statistics().membarriers;
  for (int i = 0; i < 50; ++i) d.synchronize();
  EXPECT_EQ(d.grace_statistics().membarriers, before);
  stop.store(true);
  busy.join();
}

TEST(epoch_grace, idle_reader_costs_one_membarrier_per_grace_period) {
  domain_options o;
  o.grace = grace_mode::membarrier;
  domain d(o);
  d.lock();    // registers this thread...
  d.unlock();  // ...which then idles outside any section
  const auto before = d.grace_statistics().membarriers;
  d.synchronize();
  EXPECT_EQ(d.grace_statistics().membarriers, before + 1);
}

TEST(epoch_grace, exited_and_detached_threads_cost_no_membarrier) {
  domain_options o;
  o.grace = grace_mode::membarrier;
  o.membarrier_after = std::chrono::nanoseconds(0);  // any pending record would cost one at once
  domain d(o);
  std::thread([&] { std::scoped_lock section(d); }).join();  // registers, then exits
  std::thread([&] {
    { std::scoped_lock section(d); }
    d.detach();
  }).join();
  const auto before = d.grace_statistics().membarriers;
  for (int i = 0; i < 10; ++i) d.synchronize();
  EXPECT_EQ(d.grace_statistics().membarriers, before);
  // A thread that claims a freed record is waited for again.
  std::atomic<bool> inside{false}, release{false};
  std::thread again([&] {
    std::scoped_lock section(d);
    inside.store(true);
    while (!release.load()) std::this_thread::yield();
  });
  while (!inside.load()) std::this_thread::yield();
  std::atomic<bool> deleted{false};
  d.retire(new int(1), [&](int* p) { delete p; deleted.store(true); });
  for (int i = 0; i < 1000; ++i) {
    EXPECT_FALSE(deleted.load());
    std::this_thread::yield();
  }
  release.store(true);
  again.join();
  d.barrier();
  EXPECT_TRUE(deleted.load());
}

TEST(epoch_grace, stalled_reader_is_reported_and_delays_only_reclamation) {
  std::atomic<pid_t> reported{0};
  std::atomic<pid_t> stalled_tid{0};
  domain_options o;
  o.stall_threshold = std::chrono::milliseconds(1);
  o.on_stall = [&](const stall_report& s) { reported.store(s.thread_id); };
  domain d(o);
  std::atomic<bool> release{false}, inside{false};
  std::thread stuck([&] {
    stalled_tid.store(static_cast<pid_t>(::syscall(SYS_gettid)));
    std::scoped_lock section(d);
    inside.store(true);
    while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  while (!inside.load()) std::this_thread::yield();
  std::atomic<int> deleted{0};
  d.retire(new int(1), [&](int* p) { delete p; deleted.fetch_add(1); });
  // The reclaimer is stuck behind the reader; callers and writers are not.
  slot_options so;
  so.max_draining = 1000;
  tracked::counters c;
  slot<tracked> s(d, "v0", so, 0, c);
  for (std::uint64_t i = 1; i <= 100; ++i) {
    ASSERT_TRUE(s.publish(tracked(i, c)));
    EXPECT_EQ(s.read()->value, i);
  }
  while (reported.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(reported.load(), stalled_tid.load());
  EXPECT_EQ(deleted.load(), 0);
  release.store(true);
  stuck.join();
  d.barrier();
  EXPECT_EQ(deleted.load(), 1);
  EXPECT_GE(d.grace_statistics().stalls_reported, 1U);
}

}  // namespace
}  // namespace hotswap::testing
