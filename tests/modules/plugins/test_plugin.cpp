// The test plugin. CMake builds it many times from this one source:
//   PLUGIN_VERSION=N        versions 1..4 for swaps under load
//   PLUGIN_FAULT=...        a lifecycle hook that fails (see below)
//   PLUGIN_IFACE_NAME/_VERSION   claims another interface
//   PLUGIN_ABI=N            a hand-written descriptor with another ABI version
//   PLUGIN_UNRESOLVED       calls a function nothing provides (dlopen RTLD_NOW fails)
//   PLUGIN_UNIQUE           has an inline variable: a GNU unique symbol unless -fno-gnu-unique
//   PLUGIN_KEEP_MAPPED      does not declare itself unload-safe (its code is retained)
//   PLUGIN_CTOR=...         an ELF constructor that misbehaves (see below)
//   PLUGIN_LEFTOVER=...     leaves something behind at shutdown (see below)
//   PLUGIN_HANG=...         a hook that blocks for PLUGIN_HANG_MS
//   PLUGIN_SHUTDOWN_THROW   shutdown throws through the C ABI
//   PLUGIN_NO_METADATA      no metadata note (built unsealed)
//   PLUGIN_NOTE_BUILD="x"   a metadata note that disagrees with the descriptor
//   PLUGIN_PADDING=N        N extra bytes of read-only data (another file size)
//   PLUGIN_USE_DEP          calls hs_dep_value() from libhs_dep.so (a DT_NEEDED dependency)
//   PLUGIN_GLOBAL           exports its own hs_dep_value() and, in startup, re-opens itself
//                           RTLD_GLOBAL: later lookups of that name find it first
//   PLUGIN_THREAD_LOCAL     startup, self_test and shutdown touch a thread_local with a
//                           destructor: the thread they ran on owes it until it exits
#include <dlfcn.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "test_api.h"

#ifndef PLUGIN_VERSION
#define PLUGIN_VERSION 1
#endif
#define FAULT_NONE 0
#define FAULT_STARTUP_ERROR 1  // startup returns an error code (C hook, no exception)
#define FAULT_STARTUP_THROW 2  // startup throws (caught by the plugin-side guard)
#define FAULT_MIGRATE 3        // migrate throws
#define FAULT_SELF_TEST 4      // self_test throws
#define FAULT_STARTUP_CRASH 5  // startup raises SIGSEGV
#ifndef PLUGIN_FAULT
#define PLUGIN_FAULT FAULT_NONE
#endif
#define CTOR_CRASH 1   // SIGSEGV in a constructor
#define CTOR_EXIT 2    // exit(3) in a constructor
#define CTOR_HANG 3    // a constructor that never returns
#define CTOR_THREAD 4  // a constructor that starts a detached thread running the plugin's code
#define CTOR_DAEMON 5  // a constructor that starts a daemon (double fork, setsid, exec sleep)
#define LEFTOVER_THREAD 1  // startup starts a detached thread that keeps running the plugin's code
#define LEFTOVER_SIGNAL 2  // startup installs a SIGUSR2 handler and never removes it
#define HANG_STARTUP 1
#define HANG_SHUTDOWN 2
#ifndef PLUGIN_HANG_MS
#define PLUGIN_HANG_MS 1500
#endif

#ifdef PLUGIN_UNIQUE
// A visible inline variable: GCC emits it as STB_GNU_UNIQUE unless -fno-gnu-unique.
HOTSWAP_PLUGIN_EXPORT inline std::uint64_t unique_counter = 0;
#endif

namespace {

constexpr std::uint64_t state_magic = 0x7465737473746174ULL;

struct plugin_state {
  std::uint64_t magic = state_magic;
  std::uint64_t generation = 0;
  std::mutex mutex;
  std::condition_variable cv;
  bool finish = false;
  std::thread worker;
};

std::atomic<bool> g_loaded{false};
plugin_state* g_state = nullptr;
const hotswap_host_api* g_host = nullptr;

#ifdef PLUGIN_UNRESOLVED
extern "C" std::uint64_t hotswap_test_symbol_nobody_provides(void);
#endif
#ifdef PLUGIN_USE_DEP
extern "C" std::uint64_t hs_dep_value(void);
#endif
#ifdef PLUGIN_GLOBAL
// Not hidden: the name another module's checked dependency defines.
extern "C" __attribute__((visibility("default"))) std::uint64_t hs_dep_value(void) { return 666; }
void make_global() {
  Dl_info self{};
  if (::dladdr(reinterpret_cast<void*>(&hs_dep_value), &self) != 0 && self.dli_fname != nullptr)
    ::dlopen(self.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL);  // never closed: stays global
}
#endif
#ifdef PLUGIN_PADDING
[[gnu::used]] const volatile char padding[PLUGIN_PADDING] = {1};
#endif

std::atomic<std::uint64_t> g_spins{0};
[[maybe_unused]] void spin_forever() {
  for (;;) {
    g_spins.fetch_add(1, std::memory_order_relaxed);  // a counter nobody reads: just the plugin's code running
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}
[[maybe_unused]] void on_sigusr2(int) { g_spins.fetch_add(1, std::memory_order_relaxed); }

#ifdef PLUGIN_THREAD_LOCAL
// Its destructor is the plugin's code: glibc keeps the library mapped until
// every thread that constructed one has exited (__cxa_thread_atexit).
struct per_thread {
  std::uint64_t touches = 0;
  ~per_thread() { g_spins.fetch_add(touches, std::memory_order_relaxed); }
};
thread_local per_thread t_per_thread;
void touch_thread_local() { ++t_per_thread.touches; }
#else
void touch_thread_local() {}
#endif

#if defined(PLUGIN_CTOR)
[[gnu::constructor]] void misbehaving_constructor() {
#if PLUGIN_CTOR == CTOR_CRASH
  ::raise(SIGSEGV);
#elif PLUGIN_CTOR == CTOR_EXIT
  std::exit(3);
#elif PLUGIN_CTOR == CTOR_HANG
  for (;;) ::pause();
#elif PLUGIN_CTOR == CTOR_THREAD
  std::thread(&spin_forever).detach();
#elif PLUGIN_CTOR == CTOR_DAEMON
  if (const pid_t child = ::fork(); child == 0) {
    ::setsid();
    if (::fork() == 0) ::execl("/bin/sleep", "sleep", "30", static_cast<char*>(nullptr));
    ::_exit(0);
  } else if (child > 0) {
    ::waitpid(child, nullptr, 0);
  }
#endif
}
#endif

bool loaded() { return g_loaded.load(std::memory_order_acquire); }  // pairs with the release stores below

std::uint64_t identify() {
  if (!loaded()) return TEST_API_DEAD;
#ifdef PLUGIN_UNRESOLVED
  return hotswap_test_symbol_nobody_provides();
#endif
#ifdef PLUGIN_USE_DEP
  return (std::uint64_t{PLUGIN_VERSION} << 32) | hs_dep_value();
#endif
#ifdef PLUGIN_UNIQUE
  ++unique_counter;
#endif
  return (std::uint64_t{PLUGIN_VERSION} << 32) | g_state->generation;
}

std::uint64_t add(std::uint64_t a, std::uint64_t b) {
  if (!loaded()) return TEST_API_DEAD;
  return a + b;
}

int hold_keepalive() { return loaded() ? g_host->keepalive_acquire(g_host->context) : 0; }
void release_keepalive() { g_host->keepalive_release(g_host->context); }

int start_work() {
  if (!loaded() || g_state->worker.joinable()) return 0;
  if (g_host->keepalive_acquire(g_host->context) == 0) return 0;
  g_state->worker = std::thread([s = g_state] {
    std::unique_lock lock(s->mutex);
    s->cv.wait(lock, [&] { return s->finish; });
    lock.unlock();
    g_host->keepalive_release(g_host->context);  // the work is done: the version may now drain
  });
  return 1;
}

void finish_work() {
  std::lock_guard lock(g_state->mutex);
  g_state->finish = true;
  g_state->cv.notify_all();
}

[[maybe_unused]] void* startup(const hotswap_host_api& host) {
#if PLUGIN_FAULT == FAULT_STARTUP_THROW
  (void)host;
  throw std::runtime_error("startup threw: configuration missing");
#else
#if PLUGIN_FAULT == FAULT_STARTUP_CRASH
  ::raise(SIGSEGV);
#endif
  g_host = &host;
  touch_thread_local();
  g_state = new plugin_state;
  g_loaded.store(true, std::memory_order_release);  // pairs with loaded()
  host.log(host.context, 1, "started");
#ifdef PLUGIN_GLOBAL
  make_global();
#endif
#if defined(PLUGIN_HANG) && PLUGIN_HANG == HANG_STARTUP
  std::this_thread::sleep_for(std::chrono::milliseconds(PLUGIN_HANG_MS));
#endif
#if defined(PLUGIN_LEFTOVER) && PLUGIN_LEFTOVER == LEFTOVER_THREAD
  std::thread(&spin_forever).detach();
#elif defined(PLUGIN_LEFTOVER) && PLUGIN_LEFTOVER == LEFTOVER_SIGNAL
  struct sigaction sa{};
  sa.sa_handler = &on_sigusr2;
  ::sigaction(SIGUSR2, &sa, nullptr);
#endif
  return g_state;
#endif
}

#ifdef PLUGIN_SHUTDOWN_THROW
[[maybe_unused]] void shutdown(void* state) {
#else
[[maybe_unused]] void shutdown(void* state) noexcept {
#endif
  auto* s = static_cast<plugin_state*>(state);
  touch_thread_local();
#if defined(PLUGIN_HANG) && PLUGIN_HANG == HANG_SHUTDOWN
  std::this_thread::sleep_for(std::chrono::milliseconds(PLUGIN_HANG_MS));
#endif
  g_loaded.store(false, std::memory_order_release);  // pairs with loaded()
  {
    std::lock_guard lock(s->mutex);
    s->finish = true;
    s->cv.notify_all();
  }
  if (s->worker.joinable()) s->worker.join();  // every thread we started ends before dlclose
  delete s;
  g_state = nullptr;
#ifdef PLUGIN_SHUTDOWN_THROW
  throw std::runtime_error("shutdown threw: could not flush");
#endif
}

[[maybe_unused]] void migrate(void* state, const hotswap_migration& from) {
#if PLUGIN_FAULT == FAULT_MIGRATE
  (void)state;
  (void)from;
  throw std::runtime_error("cannot read the old state: schema too old");
#else
  const auto* old = static_cast<const plugin_state*>(from.old_state);
  if (old == nullptr || old->magic != state_magic) throw std::runtime_error("old state is not ours");
  static_cast<plugin_state*>(state)->generation = old->generation + 1;
#endif
}

[[maybe_unused]] void self_test(void*) {
#if PLUGIN_FAULT == FAULT_SELF_TEST
  throw std::logic_error("self test: add(2, 2) returned 5");
#else
  if (add(2, 2) != 4) throw std::logic_error("self test: add(2, 2) != 4");
#endif
}

}  // namespace

#if defined(PLUGIN_IFACE_NAME)
struct plugin_api : test_api {};  // the same table under another identity
HOTSWAP_DECLARE_INTERFACE(plugin_api, PLUGIN_IFACE_NAME, PLUGIN_IFACE_VERSION)
static const plugin_api table = {{&identify, &add, &hold_keepalive, &release_keepalive, &start_work, &finish_work}};
#else
using plugin_api = test_api;
static const plugin_api table = {&identify, &add, &hold_keepalive, &release_keepalive, &start_work, &finish_work};
#endif

#define STR2(x) #x
#define STR(x) STR2(x)

#ifndef PLUGIN_EXTRA_FLAGS
#define PLUGIN_EXTRA_FLAGS 0u
#endif
#ifdef PLUGIN_KEEP_MAPPED
#define PLUGIN_FLAGS (0u | PLUGIN_EXTRA_FLAGS)
#else
#define PLUGIN_FLAGS (HOTSWAP_PLUGIN_UNLOAD_SAFE | PLUGIN_EXTRA_FLAGS)
#endif

#if PLUGIN_FAULT == FAULT_STARTUP_ERROR || defined(PLUGIN_ABI)
// Written by hand, as a C plugin would: a startup that reports an error code.
#ifndef PLUGIN_ABI
#define PLUGIN_ABI HOTSWAP_PLUGIN_ABI_VERSION
#endif
extern "C" {
static int c_startup(const hotswap_host_api*, void**, hotswap_plugin_error* error) {
  return hotswap_plugin_fail(error, 42, "database unreachable");
}
static void c_shutdown(void*) {}
HOTSWAP_PLUGIN_EXPORT const hotswap_plugin_descriptor* hotswap_plugin_entry(void) {
  static const hotswap_plugin_descriptor d = {PLUGIN_ABI,        sizeof(hotswap_plugin_descriptor),
                                              "hotswap.test",    1,
                                              "test-plugin",     "c-" STR(PLUGIN_VERSION),
                                              &table,            sizeof table,
                                              &c_startup,        &c_shutdown,
                                              nullptr,           nullptr};
  return &d;
}
}
// The note, by hand too, with the descriptor's ABI version.
constexpr hotswap_plugin_note with_abi(hotswap_plugin_note n) {
  n.desc.abi_version = PLUGIN_ABI;
  return n;
}
[[gnu::used, gnu::section(".note.hotswap"), gnu::aligned(4)]] static constexpr hotswap_plugin_note note =
    with_abi(::hotswap::plugin::make_note("hotswap.test", 1, "test-plugin", "c-" STR(PLUGIN_VERSION), PLUGIN_FLAGS));
#elif defined(PLUGIN_NO_METADATA) || defined(PLUGIN_NOTE_BUILD)
// The descriptor without HOTSWAP_PLUGIN's note (and, for PLUGIN_NOTE_BUILD, a note of its own that lies).
extern "C" HOTSWAP_PLUGIN_EXPORT const hotswap_plugin_descriptor* hotswap_plugin_entry(void) {
  using hooks_ = ::hotswap::plugin::hooks<startup, shutdown, migrate, self_test>;
  static const hotswap_plugin_descriptor d = {HOTSWAP_PLUGIN_ABI_VERSION, sizeof(hotswap_plugin_descriptor),
                                              "hotswap.test", 1, "test-plugin", "v" STR(PLUGIN_VERSION), &table,
                                              sizeof table, &hooks_::startup, &hooks_::shutdown, hooks_::migrate_ptr,
                                              hooks_::self_test_ptr};
  return &d;
}
#ifdef PLUGIN_NOTE_BUILD
HOTSWAP_PLUGIN_METADATA("hotswap.test", 1, "test-plugin", PLUGIN_NOTE_BUILD, PLUGIN_FLAGS)
#endif
#else
HOTSWAP_PLUGIN(plugin_api, "test-plugin", "v" STR(PLUGIN_VERSION), table, startup, shutdown, migrate, self_test,
               PLUGIN_FLAGS)
#endif
