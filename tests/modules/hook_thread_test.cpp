// Where hooks run (issue #26): reused threads for plugins that cannot leave
// work for a thread's exit, a dedicated thread that has exited by the time
// run_hook returns for the others, and a hung hook that holds up nobody.
#include <pthread.h>
#include <sched.h>
#include <signal.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include <hotswap/module/detail/hook_runner.hpp>

namespace hotswap::testing {
namespace {

using namespace std::chrono_literals;
using modules::detail::hook_outcome;
using modules::detail::hook_thread;
using modules::detail::run_hook;

TEST(hook_threads, a_reused_thread_reports_what_the_hook_returned_and_threw) {
  const hook_outcome ok = run_hook([](hotswap_plugin_error*, void** state) {
    *state = reinterpret_cast<void*>(std::uintptr_t{42});
    return 7;
  }, 10s, hook_thread::reused);
  EXPECT_EQ(ok.kind, hook_outcome::returned);
  EXPECT_EQ(ok.rc, 7);
  EXPECT_EQ(ok.state, reinterpret_cast<void*>(std::uintptr_t{42}));
  const hook_outcome threw = run_hook([](hotswap_plugin_error*, void**) -> int { throw std::runtime_error("boom"); },
                                      10s, hook_thread::reused);
  EXPECT_EQ(threw.kind, hook_outcome::threw);
  EXPECT_EQ(threw.what, "boom");
}

// A hung hook keeps its thread; later hooks get another and finish.
TEST(hook_threads, a_hung_hook_on_a_reused_thread_holds_up_no_later_hook) {
  auto release = std::make_shared<std::promise<void>>();
  std::shared_future<void> released = release->get_future().share();
  const hook_outcome hung = run_hook([released](hotswap_plugin_error*, void**) {
    released.wait();
    return 0;
  }, 50ms, hook_thread::reused);
  EXPECT_EQ(hung.kind, hook_outcome::timed_out);
  for (int i = 0; i < 10; ++i) {
    const hook_outcome o = run_hook([i](hotswap_plugin_error*, void**) { return i; }, 10s, hook_thread::reused);
    ASSERT_EQ(o.kind, hook_outcome::returned);
    EXPECT_EQ(o.rc, i);
  }
  release->set_value();
}

// The dedicated thread has run its exit (thread_local destructors) before
// run_hook returns: what the hook left for it is done.
struct flag_on_exit {
  std::shared_ptr<std::atomic<bool>> done;
  ~flag_on_exit() {
    if (done) done->store(true);
  }
};
thread_local flag_on_exit on_exit;  // namespace scope: made (and its destructor owed) on each thread that uses it

TEST(hook_threads, a_dedicated_thread_has_exited_when_the_hook_returns) {
  for (int i = 0; i < 10; ++i) {
    auto done = std::make_shared<std::atomic<bool>>(false);
    const hook_outcome o = run_hook([done](hotswap_plugin_error*, void**) {
      on_exit.done = done;
      return 0;
    }, 10s, hook_thread::dedicated);
    ASSERT_EQ(o.kind, hook_outcome::returned);
    EXPECT_TRUE(done->load());
  }
}

// Reuse: consecutive hooks mostly land on threads that ran an earlier one
// (the pool never holds more threads than hooks ran at once, plus those
// still finishing their last task).
// An operator reading `top -H` or a debugger's thread list sees whose threads these are.
TEST(hook_threads, hook_threads_are_named_for_what_they_do) {
  const auto name_seen = [](hook_thread where) {
    auto name = std::make_shared<std::string>();
    const hook_outcome o = run_hook(
        [name](hotswap_plugin_error*, void**) {
          char buf[16] = {};
          ::pthread_getname_np(::pthread_self(), buf, sizeof buf);
          *name = buf;
          return 0;
        },
        10s, where);
    EXPECT_EQ(o.kind, hook_outcome::returned);
    return *name;
  };
  EXPECT_EQ(name_seen(hook_thread::reused), "hs-spare");
  EXPECT_EQ(name_seen(hook_thread::dedicated), "hs-hook");
}

TEST(hook_threads, consecutive_hooks_reuse_threads) {
  for (int i = 0; i < 50; ++i)
    ASSERT_EQ(run_hook([](hotswap_plugin_error*, void**) { return 0; }, 10s, hook_thread::reused).kind,
              hook_outcome::returned);
  const auto [threads, idle] = modules::detail::spare_threads::instance().counts();
  EXPECT_LT(threads, 50U);
  EXPECT_LE(idle, threads);
}

// A pool thread can outlive the host's threads, so the host's asynchronous
// signals never go to it (hotswap-httpd blocks SIGTERM while it exits, and a
// pool thread taking it would end the process with the default action).
// Faults still reach it.
TEST(hook_threads, a_reused_thread_takes_no_asynchronous_signal_but_faults) {
  const hook_outcome o = run_hook([](hotswap_plugin_error*, void**) {
    sigset_t mask;
    ::pthread_sigmask(SIG_SETMASK, nullptr, &mask);
    const bool async_blocked = ::sigismember(&mask, SIGTERM) == 1 && ::sigismember(&mask, SIGINT) == 1 &&
                               ::sigismember(&mask, SIGHUP) == 1 && ::sigismember(&mask, SIGUSR1) == 1;
    const bool faults_open = ::sigismember(&mask, SIGSEGV) == 0 && ::sigismember(&mask, SIGBUS) == 0;
    return async_blocked && faults_open ? 0 : 1;
  }, 10s, hook_thread::reused);
  ASSERT_EQ(o.kind, hook_outcome::returned);
  EXPECT_EQ(o.rc, 0) << "a pool thread's signal mask lets the host's SIGTERM in, or blocks a fault";
}

// A pool thread started by an unload task comes from the domain's reclaimer,
// which runs under SCHED_BATCH; the thread then serves later tasks too (a
// swap's startup hook), so it goes back to the process's SCHED_OTHER.
TEST(hook_threads, a_pool_thread_started_from_a_batch_thread_runs_under_the_process_policy) {
  if (::sched_getscheduler(0) != SCHED_OTHER) GTEST_SKIP() << "this test runs under a policy other than SCHED_OTHER";
  auto& pool = modules::detail::spare_threads::instance();
  const std::size_t tasks = pool.counts().second + 2;  // more than are idle: new threads start
  std::mutex m;
  std::condition_variable cv;
  std::size_t started = 0, finished = 0, batch_seen = 0;
  bool release = false;
  std::thread starter([&] {
    const sched_param none{};
    ASSERT_EQ(::sched_setscheduler(0, SCHED_BATCH, &none), 0);
    for (std::size_t i = 0; i < tasks; ++i)
      pool.run([&] {
        std::unique_lock lock(m);
        ++started;
        if (::sched_getscheduler(0) == SCHED_BATCH) ++batch_seen;
        cv.notify_all();
        cv.wait(lock, [&] { return release; });  // each task holds its thread: the next needs another
        ++finished;
        cv.notify_all();
      });
  });
  starter.join();
  std::unique_lock lock(m);
  ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return started == tasks; })) << started << " of " << tasks << " started";
  EXPECT_EQ(batch_seen, 0U) << "pool threads kept the SCHED_BATCH of the thread that started them";
  release = true;
  cv.notify_all();
  cv.wait(lock, [&] { return finished == started; });  // the tasks use this frame's locals
}

}  // namespace
}  // namespace hotswap::testing
