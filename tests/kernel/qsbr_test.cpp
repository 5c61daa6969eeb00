// qsbr_grace specifics: what a thread must do (announce, go offline around
// blocking) and what happens when it does not (a stall report; only
// reclamation waits). The typed suites run the shared behaviour.
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>
#include <hotswap/hotswap.hpp>

#include "tracked.hpp"

namespace hotswap::testing {
namespace {

TEST(qsbr_grace, a_reference_lives_until_its_thread_announces) {
  qsbr_domain d;
  std::atomic<bool> holding{false}, announce{false}, announced{false};
  std::atomic<int> deleted{0}, deleted_before_announce{0};
  std::thread holder([&] {
    auto& r = d.this_thread();  // online from here
    holding.store(true);
    while (!announce.load()) std::this_thread::yield();  // no section, but no announcement either
    announced.store(true);  // before quiescent(): the deleter may run right after it
    r.quiescent();
  });
  while (!holding.load()) std::this_thread::yield();
  d.retire(new int(1), [&](int* p) {
    if (!announced.load()) deleted_before_announce.fetch_add(1);
    delete p;
    deleted.fetch_add(1);
  });
  for (int i = 0; i < 200; ++i) std::this_thread::yield();
  EXPECT_EQ(deleted.load(), 0);
  announce.store(true);
  d.barrier();
  EXPECT_EQ(deleted.load(), 1);
  EXPECT_EQ(deleted_before_announce.load(), 0);
  holder.join();
}

TEST(qsbr_grace, busy_thread_announcing_ends_grace_periods) {
  qsbr_domain d;
  tracked::counters c;
  slot<tracked, qsbr_domain> s(d, "v0", {}, 0, c);
  std::atomic<bool> stop{false}, started{false};
  std::thread busy([&] {
    auto& r = d.this_thread();
    std::uint64_t n = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      s.call(r, [](const tracked& t) { return t.value; });
      if (++n % 1000 == 0) {
        r.quiescent();
        started.store(true, std::memory_order_relaxed);
      }
    }
  });
  while (!started.load()) std::this_thread::yield();
  std::uint64_t refused = 0;
  for (std::uint64_t i = 1; i <= 20; ++i) {
    if (!s.publish(tracked(i, c))) ++refused;
    d.synchronize();  // ends: the busy thread announces
    d.barrier();      // the reclaimer's grace period ends too
  }
  stop.store(true);
  busy.join();
  EXPECT_EQ(refused, 0U);
  d.barrier();
  EXPECT_EQ(c.destroyed.load() + 1, c.created.load());
}

TEST(qsbr_grace, offline_thread_does_not_hold_grace_periods) {
  qsbr_domain d;
  std::atomic<bool> offline{false}, release{false};
  std::thread sleeper([&] {
    auto& r = d.this_thread();
    {
      qsbr_grace::offline_scope blocking(&r);
      offline.store(true);
      while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    EXPECT_TRUE(r.is_online());
  });
  while (!offline.load()) std::this_thread::yield();
  for (int i = 0; i < 20; ++i) d.synchronize();
  EXPECT_EQ(d.grace_statistics().stalls_reported, 0U);
  release.store(true);
  sleeper.join();
}

TEST(qsbr_grace, silent_thread_is_reported_and_delays_only_reclamation) {
  std::atomic<pid_t> reported{0}, silent_tid{0};
  domain_options o;
  o.stall_threshold = std::chrono::milliseconds(1);
  o.on_stall = [&](const stall_report& s) { reported.store(s.thread_id); };
  qsbr_domain d(o);
  std::atomic<bool> release{false}, registered{false};
  std::thread silent([&] {
    silent_tid.store(static_cast<pid_t>(::syscall(SYS_gettid)));
    d.attach();
    registered.store(true);
    while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  while (!registered.load()) std::this_thread::yield();
  std::atomic<int> deleted{0};
  d.retire(new int(1), [&](int* p) { delete p; deleted.fetch_add(1); });
  slot_options so;
  so.max_draining = 1000;
  tracked::counters c;
  slot<tracked, qsbr_domain> s(d, "v0", so, 0, c);
  for (std::uint64_t i = 1; i <= 100; ++i) {
    ASSERT_TRUE(s.publish(tracked(i, c)));
    EXPECT_EQ(s.draining(), i);  // replaced, none reclaimed, none refused
  }
  while (reported.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(reported.load(), silent_tid.load());
  EXPECT_EQ(deleted.load(), 0);
  release.store(true);
  silent.join();
  d.barrier();
  EXPECT_EQ(deleted.load(), 1);
}

}  // namespace
}  // namespace hotswap::testing
