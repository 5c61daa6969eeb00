// The Linux futex, for a grace period that sleeps until a reader wakes it.
//
// A waiter sleeps only while the word still holds the value it read; a waker
// changes the word before it calls wake. The kernel compares and queues in
// one step, so a change that lands before the sleep makes the sleep return at
// once: no wake-up between "read the word" and "sleep" can be lost.
// (std::atomic::wait would do, but offers no timeout, which the grace period
// needs for stall reports and for its fence-mode backstop.)
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <ctime>

namespace hotswap::detail {

static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t) &&
                  std::atomic<std::uint32_t>::is_always_lock_free,
              "a futex is a plain 32-bit word");

/// Sleeps while `word` holds `expected`, for at most `timeout`. Returns on a
/// wake, a changed word, a signal or the timeout; callers re-check.
inline void futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                       std::chrono::nanoseconds timeout) noexcept {
  const auto ns = timeout.count() > 0 ? timeout.count() : 1;
  const timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
  ::syscall(SYS_futex, reinterpret_cast<const std::uint32_t*>(&word), FUTEX_WAIT_PRIVATE, expected, &ts, nullptr, 0);
}

/// Wakes every thread sleeping on `word`.
inline void futex_wake_all(std::atomic<std::uint32_t>& word) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}

}  // namespace hotswap::detail
