// How membarrier() calls are counted: this executable defines syscall(), which
// interposes on glibc's for every caller in the process (the kernel headers
// compiled in here, and liburcu-memb.so, which calls syscall(__NR_membarrier,
// ...)). The wrapper counts membarrier commands that fence other CPUs and
// forwards every call, unchanged, to glibc's syscall() found with RTLD_NEXT.
// For the epoch backends the count must match the kernel's own counter; the
// report shows both.
#include "membarrier_count.hpp"

#include <dlfcn.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdarg>

namespace {

std::atomic<std::uint64_t> g_fencing_membarriers{0};

using syscall_fn = long (*)(long, ...);

syscall_fn real_syscall() noexcept {
  static const syscall_fn real = reinterpret_cast<syscall_fn>(::dlsym(RTLD_NEXT, "syscall"));
  return real;
}

}  // namespace

// glibc's syscall() forwards six arguments whatever the caller supplied, the
// sixth loaded from the caller's stack; so do we. A caller that passed fewer
// (libstdc++'s futex calls pass three) has no sixth slot there, and ASan
// reports that load as a read of the caller's frame: not instrumented here.
extern "C" __attribute__((no_sanitize("address"))) long syscall(long number, ...) noexcept {
  va_list ap;
  va_start(ap, number);
  long a[6];
  for (long& x : a) x = va_arg(ap, long);
  va_end(ap);
  if (number == __NR_membarrier &&
      (a[0] == MEMBARRIER_CMD_PRIVATE_EXPEDITED || a[0] == MEMBARRIER_CMD_SHARED ||
       a[0] == MEMBARRIER_CMD_GLOBAL_EXPEDITED))
    g_fencing_membarriers.fetch_add(1, std::memory_order_relaxed);
  return real_syscall()(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}

namespace hotswap::stress {

std::int64_t membarrier_syscalls() noexcept {
  if (real_syscall() == nullptr) return -1;
  return static_cast<std::int64_t>(g_fencing_membarriers.load(std::memory_order_relaxed));
}

}  // namespace hotswap::stress
