// The asymmetric fence behind the default grace period.
//
// MEMBARRIER_CMD_PRIVATE_EXPEDITED makes every thread of this process that is
// running right now execute a full memory barrier (by IPI) before the call
// returns; threads that are not running pass one at their next context switch.
// That lets a reader replace its fence with a compiler barrier: the writer pays
// for both sides, and only when it has to.
#pragma once

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace hotswap::detail {

inline long membarrier_call(int cmd) noexcept {
  return ::syscall(__NR_membarrier, cmd, 0U, 0);
}

/// Registers this process for private expedited membarrier. Returns false
/// where the kernel or a seccomp filter refuses it.
inline bool membarrier_register() noexcept {
  const long supported = membarrier_call(MEMBARRIER_CMD_QUERY);
  if (supported < 0 || (supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
  return membarrier_call(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

/// A full barrier on every running thread of this process. Only called after
/// membarrier_register() succeeded.
inline void membarrier_all() {
  if (membarrier_call(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0)
    throw std::system_error(errno, std::generic_category(), "hotswap: membarrier(PRIVATE_EXPEDITED)");
}

}  // namespace hotswap::detail
