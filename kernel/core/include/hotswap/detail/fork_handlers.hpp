// What happens to domains in a child process after fork().
//
// fork() copies the memory of every domain but only the calling thread, so in
// the child the reclaimer thread is gone, and so are the readers of every
// other thread (a section one of them had open would block grace periods
// forever). Each domain registers here; one pthread_atfork() handler set
// (per copy of this header's code, i.e. per shared object) then:
//   before fork   waits until no reclamation round is in flight and holds it
//                 off, so the child never inherits half a round;
//   in the parent lets rounds run again;
//   in the child  gives back every record but the forking thread's and starts
//                 a new reclaimer thread, so the domain works as before.
// A grace policy opts in to giving records back with after_fork_in_child()
// (epoch_grace does; the test-only references do not, so a section open in
// another parent thread blocks their grace periods in the child).
// The rules this leaves (as in liburcu): fork() outside read sections and not
// from a deleter, or the prepare step waits for a round that waits for us; and
// no domain constructed or destroyed inside a deleter while another thread
// forks (the registry's lock and the round's would be taken in both orders).
#pragma once

#include <pthread.h>

#include <mutex>

namespace hotswap::detail {

/// A domain, as the fork handlers see it.
class fork_participant {
 public:
  virtual void before_fork() noexcept = 0;
  virtual void after_fork_in_parent() noexcept = 0;
  virtual void after_fork_in_child() noexcept = 0;

 protected:
  fork_participant() = default;
  ~fork_participant() = default;

 private:
  friend class fork_registry;
  fork_participant* prev_ = nullptr;
  fork_participant* next_ = nullptr;
};

/// Every live domain of this shared object, under one mutex that fork() holds.
class fork_registry {
 public:
  static void add(fork_participant& p) {
    fork_registry& r = instance();
    std::lock_guard lock(r.mutex_);
    p.next_ = r.head_;
    if (r.head_ != nullptr) r.head_->prev_ = &p;
    r.head_ = &p;
  }

  static void remove(fork_participant& p) noexcept {
    fork_registry& r = instance();
    std::lock_guard lock(r.mutex_);
    if (p.prev_ != nullptr) p.prev_->next_ = p.next_;
    else r.head_ = p.next_;
    if (p.next_ != nullptr) p.next_->prev_ = p.prev_;
    p.prev_ = p.next_ = nullptr;
  }

 private:
  fork_registry() { ::pthread_atfork(&prepare, &in_parent, &in_child); }

  // Never destroyed: a domain with static storage may outlive any order of
  // static destructors; the handlers stay valid until the process ends.
  static fork_registry& instance() {
    static fork_registry* r = new fork_registry;
    return *r;
  }

  template <class F>
  void each(F f) noexcept {
    for (fork_participant* p = head_; p != nullptr; p = p->next_) f(*p);
  }

  static void prepare() noexcept {
    fork_registry& r = instance();
    r.mutex_.lock();
    r.each([](fork_participant& p) { p.before_fork(); });
  }
  static void in_parent() noexcept {
    fork_registry& r = instance();
    r.each([](fork_participant& p) { p.after_fork_in_parent(); });
    r.mutex_.unlock();
  }
  static void in_child() noexcept {
    fork_registry& r = instance();
    r.each([](fork_participant& p) { p.after_fork_in_child(); });
    r.mutex_.unlock();  // locked by this very thread in prepare()
  }

  std::mutex mutex_;
  fork_participant* head_ = nullptr;
};

}  // namespace hotswap::detail
