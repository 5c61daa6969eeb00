// ld.so's state as the loader sees it, process-wide: the lock held around
// every dlopen and dlclose of plugin code, and the checked dependencies
// loaded now, by SONAME. Shared by every loader in the process, because
// ld.so is.
//
// fork() copies one thread. A child forked while another thread is inside
// dlopen or dlclose would start with ld.so's own lock held by a thread it does
// not have, and hang in its first dlopen. So the loader holds its lock across
// every fork (pthread_atfork, fork_guard.hpp): a fork waits for a dlopen or
// dlclose in progress, and the child starts with ld.so idle.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <string>

namespace hotswap::modules::detail {

/// Held around dlopen and around dlclose + the NOLOAD probe. glibc already
/// serialises them on its own lock; ours makes that order visible to
/// ThreadSanitizer, which sees neither ld.so's lock nor its munmap/mmap, and
/// would otherwise report a new library's statics as racing with those of the
/// unloaded library that had the same addresses. Take it through dl_lock.
inline std::mutex& dl_mutex() {
  static std::mutex m;
  return m;
}

/// True on the thread that holds dl_mutex through a dl_lock: a fork from
/// inside dlopen (a plugin constructor that forks) must not wait for it.
inline bool& dl_mutex_held_here() noexcept {
  thread_local bool held = false;
  return held;
}

/// dl_mutex, held for a scope, marked as held by this thread.
class dl_lock {
 public:
  dl_lock() : lock_(dl_mutex()) { dl_mutex_held_here() = true; }
  ~dl_lock() { dl_mutex_held_here() = false; }
  dl_lock(const dl_lock&) = delete;
  dl_lock& operator=(const dl_lock&) = delete;

 private:
  std::lock_guard<std::mutex> lock_;
};

/// Checked dependencies loaded now, process-wide, by SONAME (under dl_mutex).
/// ld.so binds a DT_NEEDED name to the first loaded object with that SONAME,
/// so a second build under the same SONAME cannot be loaded beside the first;
/// the same build (same SHA-256) is shared. Never destroyed: an unload worker
/// may release a dependency while the process runs its exit handlers.
struct loaded_dependency_build {
  std::string sha256;
  std::size_t users = 0;
};
inline std::map<std::string, loaded_dependency_build>& loaded_dependencies() {
  static auto& table = *new std::map<std::string, loaded_dependency_build>;
  return table;
}

}  // namespace hotswap::modules::detail
