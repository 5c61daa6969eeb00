// Whether this test binary runs under ThreadSanitizer (g++ defines
// __SANITIZE_THREAD__, clang answers __has_feature), for the few tests it
// cannot run: TSan does not support starting threads in a multi-threaded
// program's forked child.
#pragma once

namespace hotswap::testing {

#if defined(__SANITIZE_THREAD__)
inline constexpr bool under_tsan = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
inline constexpr bool under_tsan = true;
#else
inline constexpr bool under_tsan = false;
#endif
#else
inline constexpr bool under_tsan = false;
#endif

}  // namespace hotswap::testing
