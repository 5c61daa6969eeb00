// The one switch between the core and the machine it runs on.
//
// Every atomic, fence, futex wait/wake and membarrier of the core goes through
// the names below, and so does what a model checker must own besides them: the
// calling thread's identity and thread-local storage, the clock a grace period
// reads, the spin-wait hint and the mutex that serialises reclamation rounds.
//
// In every normal build these ARE the standard types and the real syscalls:
// `detail::atomic<T>` is an alias of std::atomic<T> (the same type, so the
// same code), the fences are std's, futex and membarrier are syscalls
// (futex.hpp, membarrier.hpp). A translation unit that defines HOTSWAP_RELACY
// before its first kernel include gets Relacy's types instead (relacy.hpp, the
// other side of this switch): tests/relacy compiles the real basic_domain,
// slot and pin under the C++ memory model that way.
//
// Why one switch and not an `Atom` template parameter (folly's
// DeterministicSchedule): the atomics sit in seven headers and inside types
// users name (basic_domain, slot, pin, the version block, the pin counter, the
// record list, the reclaimer). A parameter would appear in every one of their
// signatures and be threaded through each, for a choice made once per program;
// and std::atomic cannot be swapped for Relacy's without also swapping thread
// identity, the clock and the futex, which a parameter on the atomic alone
// would not reach. The Relacy tests are their own executable, so no program
// mixes the two sides (one definition per program, as the ODR wants).
//
// Mutants: `weakened(mutant::x)` is a constant false in normal builds, so the
// code it guards is the code that runs; the Relacy build selects one at run
// time and must then find a failure (tests/relacy/CMakeLists.txt lists them).
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

namespace hotswap::detail {

/// One weakened ordering each; the labels name the step they drop.
enum class mutant {
  none,
  no_reader_fence,         // epoch_grace: the fence-mode reader's EG.F after EG.C
  no_membarrier,           // epoch_grace: trust `inactive` without EG.M
  no_claim_fence,          // thread_records: the claim fence (EG.F, claim side)
  retire_store_buffering,  // retire: RT.R1 release only, RT.R2 acquire only
  pin_release_relaxed,     // pin_counter: PC.P1 relaxed
  flag_after_membarrier,   // epoch_grace: EG.W1 raised after EG.M
  late_futex_read,         // epoch_grace: EG.W2 after the re-check
  trust_earlier_raise,     // epoch_grace: a reader raised before EG.M is not asked again
  qsbr_announce_relaxed,   // qsbr_grace: QS.Q relaxed
  qsbr_no_online_fence,    // qsbr_grace: online() without its fence
  qsbr_no_wake_fence,      // qsbr_grace: the writer's fence between QS.F and its re-check
  qsbr_exit_without_wake,  // qsbr_grace: a record given back stores `offline`, wakes nobody
};

}  // namespace hotswap::detail

#ifdef HOTSWAP_RELACY
#include "relacy.hpp"
#else
#include <cxxabi.h>

#include "futex.hpp"
#include "membarrier.hpp"

namespace hotswap::detail {

inline constexpr bool model_checked = false;
constexpr bool weakened(mutant) noexcept { return false; }
/// Polls a grace period spends on busy readers before it sleeps: a
/// performance choice, not an ordering (the model checker uses none, so that
/// schedules which sleep are the ones it explores).
inline constexpr unsigned spin_polls = 64;

template <class T>
using atomic = std::atomic<T>;
using mutex = std::mutex;
using clock = std::chrono::steady_clock;
using thread_id = std::thread::id;

inline void thread_fence(std::memory_order order) noexcept { std::atomic_thread_fence(order); }
/// A compiler barrier: orders this thread's accesses for the compiler only.
inline void compiler_fence() noexcept { std::atomic_signal_fence(std::memory_order_seq_cst); }

inline thread_id this_thread_id() noexcept { return std::this_thread::get_id(); }

/// A spin-wait hint to the CPU.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

/// This thread's T: constant-initialised and trivially destructible, so
/// reaching it costs no TLS guard and no call.
template <class T>
T& this_thread_value() noexcept {
  constinit thread_local T value;
  return value;
}

/// An address inside the shared object (or executable) that includes this
/// header: hidden, so every object has its own. It names that object to
/// __cxa_thread_atexit, as __dso_handle does for compiler-generated handlers
/// (declaring __dso_handle here would clash with the declaration g++ makes
/// implicitly for a translation unit's static destructors).
[[gnu::visibility("hidden")]] inline char this_object_marker = 0;

/// Runs fn(object) when this thread exits, in the sequence of its
/// thread_local destructors; may be called again while that sequence runs,
/// and keeps this shared object loaded until fn has run.
inline void at_thread_exit(void (*fn)(void*), void* object) noexcept {
  __cxxabiv1::__cxa_thread_atexit(fn, object, &this_object_marker);
}

}  // namespace hotswap::detail

#endif
