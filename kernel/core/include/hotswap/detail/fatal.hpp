// Contract violations the kernel cannot survive: say why, then terminate.
//
// Used where going on would silently drop protection (a read section nested
// past what the record can count) or leave the reclaimer in an unknown state
// (a deleter that threw). The message names the rule that was broken.
#pragma once

#include <cstdio>
#include <exception>

namespace hotswap::detail {

[[noreturn, gnu::cold]] inline void fatal(const char* message) noexcept {
  std::fputs(message, stderr);
  std::fputc('\n', stderr);
  std::terminate();
}

/// A failed HOTSWAP_ASSERT (assert_debug.hpp): the rule, then where.
[[noreturn, gnu::cold, gnu::noinline]] inline void contract_broken(const char* rule, const char* file,
                                                                   int line) noexcept {
  std::fprintf(stderr, "%s (%s:%d)\n", rule, file, line);
  std::terminate();
}

[[noreturn, gnu::cold, gnu::noinline]] inline void nesting_overflow() noexcept {
  fatal("hotswap: read sections nested 32767 deep on one thread; one more would wrap the depth counter "
        "and drop protection");
}

}  // namespace hotswap::detail
