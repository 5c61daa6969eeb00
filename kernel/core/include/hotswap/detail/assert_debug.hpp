// Debug checks of the kernel's contracts, as liburcu's urcu_assert_debug.
//
// HOTSWAP_ASSERT(condition, message) checks a rule a caller can break (an
// unlock() without its lock(), a reader of another domain passed to a slot)
// where breaking it starts, and terminates with the message and the place.
// The checks are on when HOTSWAP_ASSERT_DEBUG is defined to 1 (the project's
// own test builds do so) and off by default for consumers, whatever NDEBUG
// says: a consumer's debug build keeps the kernel's hot path as measured.
// Off, the condition is not evaluated (only type-checked).
#pragma once

#include "fatal.hpp"

#ifndef HOTSWAP_ASSERT_DEBUG
#define HOTSWAP_ASSERT_DEBUG 0
#endif

#if HOTSWAP_ASSERT_DEBUG
#define HOTSWAP_ASSERT(condition, message) \
  ((condition) ? static_cast<void>(0) : ::hotswap::detail::contract_broken(message, __FILE__, __LINE__))
#else
#define HOTSWAP_ASSERT(condition, message) static_cast<void>(sizeof(!(condition)))
#endif
