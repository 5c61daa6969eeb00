// What a process forked from a loader's host needs: ld.so idle, and state
// kept for threads the child does not have reset.
//
// fork() copies the calling thread only. A child forked while another thread
// was inside dlopen or dlclose, or held a lock of the loader's, would wait for
// that thread forever; a count of unloads running on worker threads would never
// fall to zero in the child, which has no workers. Hosts fork for real reasons
// (a PostgreSQL backend forks itself to preflight a container; daemons fork
// helpers), so the loader registers pthread_atfork handlers once: before a fork
// it takes dl_mutex (unless this thread already holds it: a plugin constructor
// that forks) and then every participant's lock; after it, the parent releases
// them, and the child releases them and resets what belonged to threads it
// does not have. A fork therefore waits for a dlopen or dlclose in progress.
#pragma once

#include <pthread.h>

#include <algorithm>
#include <mutex>
#include <vector>

#include "dl_state.hpp"

namespace hotswap::modules::detail {

/// State with a lock that a fork must not copy while held (unload_tracker).
class fork_participant {
 public:
  fork_participant(const fork_participant&) = delete;
  fork_participant& operator=(const fork_participant&) = delete;

 protected:
  fork_participant() {
    static_cast<void>(installed);
    std::lock_guard lock(list_mutex());
    list().push_back(this);
  }
  ~fork_participant() {
    std::lock_guard lock(list_mutex());
    list().erase(std::find(list().begin(), list().end(), this));
  }

  virtual void lock_for_fork() = 0;       ///< takes its lock
  virtual void unlock_in_parent() = 0;    ///< releases it
  virtual void reset_in_child() = 0;      ///< forgets other threads' state, releases it

 private:
  // Never destroyed (nor the list): a participant may leave it on an unload
  // worker while the process runs its exit handlers.
  static std::mutex& list_mutex() {
    static std::mutex& m = *new std::mutex;
    return m;
  }
  static std::vector<fork_participant*>& list() {
    static auto& participants = *new std::vector<fork_participant*>;
    return participants;
  }
  // Whether before_fork took dl_mutex on this thread (it did not if the thread held it).
  static bool& took_dl_mutex() noexcept {
    thread_local bool took = false;
    return took;
  }

  // Order: dl_mutex, the list, each participant (nothing takes them in another order:
  // participants' locks are never held around dlopen or dlclose).
  static void before_fork() {
    took_dl_mutex() = !dl_mutex_held_here();
    if (took_dl_mutex()) dl_mutex().lock();
    list_mutex().lock();
    for (fork_participant* p : list()) p->lock_for_fork();
  }
  static void after_fork_in_parent() {
    for (fork_participant* p : list()) p->unlock_in_parent();
    list_mutex().unlock();
    if (took_dl_mutex()) dl_mutex().unlock();
  }
  static void after_fork_in_child() {
    for (fork_participant* p : list()) p->reset_in_child();
    list_mutex().unlock();
    if (took_dl_mutex()) dl_mutex().unlock();
  }

  // Installed at static initialisation of any program that includes this
  // header, not at the first participant: dl_mutex needs the handlers even
  // when no participant exists yet (a fork while another thread is in dlopen).
  static inline const bool installed = [] {
    ::pthread_atfork(&before_fork, &after_fork_in_parent, &after_fork_in_child);
    return true;
  }();
};

}  // namespace hotswap::modules::detail
