// qsbr_grace specifics: what a thread must do (announce, go offline around
// blocking) and what happens when it does not (a stall report; only
// reclamation waits). The typed suites run the shared behaviour.
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <memory>
#include <string>
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

/// Whether thread `tid` of this process is blocked in futex(2) (its
/// /proc/self/task/TID/syscall starts with the syscall number).
bool blocked_in_futex(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/syscall");
  long number = -1;
  in >> number;
  return number == SYS_futex;
}

TEST(qsbr_grace, thread_exit_wakes_a_grace_period_sleeping_on_it) {
  // The grace period waits for an online thread that never announces; once
  // it sleeps on the futex, the thread exits. Its record going offline must
  // wake the grace period; without the wake it would sleep until its stall
  // limit, an hour here, so "returned within 30 s" tells the two apart.
  domain_options o;
  o.stall_threshold = std::chrono::hours(1);
  auto d = std::make_unique<qsbr_domain>(o);
  std::atomic<bool> registered{false}, leave{false}, synchronized{false};
  std::thread online([&] {
    d->attach();
    registered.store(true);
    while (!leave.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });  // exits without announcing: the record goes back at thread exit
  while (!registered.load()) std::this_thread::yield();
  std::atomic<pid_t> writer_tid{0};
  std::thread writer([&, dom = d.get()] {
    writer_tid.store(static_cast<pid_t>(::syscall(SYS_gettid)));
    dom->synchronize();
    synchronized.store(true);
  });
  while (writer_tid.load() == 0) std::this_thread::yield();
  const auto wait_for = [](const auto& done, std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    return done();
  };
  ASSERT_TRUE(wait_for([&] { return blocked_in_futex(writer_tid.load()); }, std::chrono::seconds(10)))
      << "the grace period never slept on the silent thread";
  leave.store(true);
  online.join();
  if (!wait_for([&] { return synchronized.load(); }, std::chrono::seconds(30))) {
    ADD_FAILURE() << "the thread's exit did not wake the grace period sleeping on it";
    writer.detach();         // asleep for the hour: leave it and its domain behind
    static_cast<void>(d.release());
    return;
  }
  writer.join();
}

}  // namespace
}  // namespace hotswap::testing
