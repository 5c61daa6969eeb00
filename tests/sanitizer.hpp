// Whether this test binary runs under ThreadSanitizer (g++ defines
// __SANITIZE_THREAD__, clang answers __has_feature), for the few tests it
// cannot run: TSan does not support starting threads in a multi-threaded
// program's forked child. Likewise under_asan, for the project's ASan+UBSan
// build: UBSan's vptr check cannot run in a process out of descriptors.
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

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool under_asan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool under_asan = true;
#else
inline constexpr bool under_asan = false;
#endif
#else
inline constexpr bool under_asan = false;
#endif

}  // namespace hotswap::testing
