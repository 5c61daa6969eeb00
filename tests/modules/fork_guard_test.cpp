// The loader's fork handlers (detail/fork_guard.hpp): a child forked while
// another thread loads or unloads starts with the loader's dlopen/dlclose lock
// free, and counts none of the parent's unloads in flight (their workers were
// not copied); a fork from inside that lock (a plugin constructor that forks)
// does not wait for itself; tasks queued for the parent's spare threads are
// neither run nor destroyed in the child.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include <hotswap/module/detail/spare_threads.hpp>
#include <hotswap/module/module_loader.hpp>

#include "../sanitizer.hpp"

namespace hotswap::testing {
namespace {

namespace d = modules::detail;

constexpr int child_hung = 124;

// The child's exit status, 0 meaning what it checked held; child_hung (and the
// child killed) if it has not exited within 10 s.
int child_status(pid_t pid) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  int status = 0;
  for (;;) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    if (done < 0 && errno != EINTR) return 128;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return child_hung;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

TEST(fork_guard, a_child_counts_none_of_the_parents_unloads_in_flight) {
  d::unload_tracker& all = d::unload_tracker::process_wide();
  all.begin();  // an unload on a worker thread, which the child will not have
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(modules::wait_for_unloads(std::chrono::seconds(0)) ? 0 : 1);
  all.end();
  EXPECT_EQ(child_status(pid), 0) << "the child waits for an unload whose worker it does not have";
  EXPECT_TRUE(modules::wait_for_unloads(std::chrono::seconds(10)));
}

TEST(fork_guard, a_child_starts_with_the_dl_lock_free) {
  if (under_tsan) GTEST_SKIP() << "ThreadSanitizer reports the parent's thread, not yet joined at the fork, as leaked by the child";
  std::atomic<bool> held{false};
  std::thread loader([&] {  // as if inside dlopen for a while
    d::dl_lock lock;
    held.store(true);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  });
  while (!held.load()) std::this_thread::yield();
  const pid_t pid = ::fork();  // waits for the lock: the child must not copy it held
  if (pid == 0) {
    const bool free = d::dl_mutex().try_lock();
    ::_exit(free ? 0 : 1);
  }
  loader.join();
  EXPECT_EQ(child_status(pid), 0) << "the child started with the loader's dl lock held by a thread it does not have";
}

TEST(fork_guard, a_fork_from_inside_the_dl_lock_does_not_wait_for_itself) {
  pid_t pid = -1;
  {
    d::dl_lock lock;  // a plugin constructor that forks runs inside dlopen
    pid = ::fork();
    if (pid == 0) ::_exit(0);
  }
  ASSERT_GT(pid, 0);
  EXPECT_EQ(child_status(pid), 0);
}

// What an unload worker's task owns: destroying it starts a hook (a plugin's
// shutdown) on the spare threads.
struct starts_a_task_when_destroyed {
  ~starts_a_task_when_destroyed() { d::spare_threads::instance().run([] {}); }
};

// A fork right after a task was handed to an idle spare thread mostly finds it
// still queued. The child must neither run nor destroy it (destroying it ran
// its owner's unload in the child, under the pool's lock: the child hung), and
// must still run tasks of its own.
TEST(fork_guard, a_child_keeps_none_of_the_tasks_queued_for_the_parents_spare_threads) {
  if (under_tsan) GTEST_SKIP() << "ThreadSanitizer does not support threads started after a multi-threaded fork";
  d::spare_threads& pool = d::spare_threads::instance();
  for (int i = 0; i < 200; ++i) {
    pool.run([] {});  // leaves an idle thread behind
    for (int spin = 0; pool.counts().second == 0 && spin < 10000; ++spin) std::this_thread::yield();
    pool.run([owned = std::make_shared<starts_a_task_when_destroyed>()] {});
    const pid_t pid = ::fork();
    if (pid == 0) {
      std::atomic<bool> ran{false};
      pool.run([&] { ran.store(true); });
      for (int spin = 0; !ran.load() && spin < 5000; ++spin) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      ::_exit(ran.load() ? 0 : 1);
    }
    const int status = child_status(pid);
    ASSERT_NE(status, child_hung) << "fork " << i << ": the child hung destroying a task of the parent's";
    ASSERT_EQ(status, 0) << "fork " << i << ": the child could not run a task of its own";
  }
}

}  // namespace
}  // namespace hotswap::testing
