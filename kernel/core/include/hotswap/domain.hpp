// A reclamation domain: read sections, grace periods, deferred retire.
//
// Every reclamation policy (the default epoch_grace, cds_urcu_grace over
// libcds, shared_mutex_grace as a simple reference) is plugged into the same
// basic_domain, so slots, pins, tests and benchmarks are written once against
// one set of verbs:
//
//   lock() / unlock()      enter / leave a read section (nestable; the domain and
//                          its readers are BasicLockable: std::lock_guard is the
//                          RAII section)
//   this_thread()          this thread's reader: hold it on hot paths and call
//                          lock()/unlock() on it to skip the per-call lookup
//   attach() / detach()    register / unregister the calling thread explicitly
//                          (otherwise: at first use / at thread exit)
//   synchronize()          wait until every section older than the call ended
//   retire(p, deleter)     run deleter(p) after a grace period, on the reclaimer
//   barrier()              wait until every retire issued so far has run
//   poll()                 drive reclamation by hand (reclaim_mode::manual)
//   in_read_section()      whether the calling thread is inside a section
//
// Deleters run on the reclaimer, one round at a time. A deleter must not
// throw (the process terminates with a message naming the rule); inside one,
// poll() does nothing and returns false, and barrier() throws
// std::logic_error (the round running it cannot finish while it waits).
//
// After fork() a domain keeps working in the child: records of threads that
// do not exist there are given back (epoch_grace) and a new reclaimer thread
// starts (see detail/fork_handlers.hpp). Fork outside read sections, not from
// a deleter.
//
// The host owns domain objects and hands them to whoever needs one: a header
// library cannot hold a process-wide singleton without duplicating it in every
// shared object loaded with RTLD_LOCAL.
#pragma once

#include <memory>
#include <stdexcept>
#include <utility>

#include "epoch_grace.hpp"  // the default policy, for the `domain` alias below
#include "grace_policy.hpp"
#include "grace_stats.hpp"
#include "options.hpp"
#include "retire.hpp"

namespace hotswap {

template <class Grace>
class basic_domain {
  // Checked here rather than in the template head so that fwd.hpp can name
  // basic_domain<epoch_grace> before epoch_grace is complete.
  static_assert(grace_policy<Grace>, "see grace_policy.hpp for what a grace policy provides");

 public:
  using grace_type = Grace;
  using reader = typename Grace::reader;

  explicit basic_domain(domain_options options = {})
      : grace_(options), reclaimer_(grace_, options.reclaim, options.reclaim_window, options.batch_reclaimer) {}
  basic_domain(const basic_domain&) = delete;
  basic_domain& operator=(const basic_domain&) = delete;

  /// Runs every pending deleter before returning. Slots and pins of this
  /// domain must be gone by then; a version still pinned is leaked, not freed.
  ~basic_domain() {
    // The reclaimer drains after this body: a qsbr_grace thread stays offline
    // for it rather than hold up the last grace period (the domain is going).
    if constexpr (requires(reader& r) { r.offline(); })
      if (reader* r = grace_.this_thread_reader_if_any(); r != nullptr) r->offline();
  }

  reader& this_thread() { return grace_.this_thread_reader(); }

  /// Registers the calling thread now rather than at its first section.
  reader& attach() { return this_thread(); }

  /// Gives the calling thread's record back before the thread exits (thread
  /// pools that lend a worker to the domain for a while). A later section
  /// registers it again. Throws inside a read section.
  void detach() {
    if (in_read_section()) throw std::logic_error("hotswap: detach() called inside a read section");
    grace_.detach_this_thread();
  }

  /// Whether the calling thread is inside a read section of this domain.
  bool in_read_section() noexcept {
    const reader* r = grace_.this_thread_reader_if_any();
    return r != nullptr && r->nesting() != 0;
  }

  /// Whether `r` is a reader of this domain (for debug checks; a policy that
  /// cannot tell answers true).
  bool owns(const reader& r) const noexcept {
    if constexpr (requires { grace_.owns(r); }) return grace_.owns(r);
    else return true;
  }

  void lock() { this_thread().lock(); }
  void unlock() { this_thread().unlock(); }

  /// Throws std::logic_error when called inside a read section of this
  /// domain on this thread: waiting for ourselves would never end.
  void synchronize() {
    if (in_read_section())
      throw std::logic_error("hotswap: synchronize() called inside a read section of the same domain");
    grace_.synchronize();
  }

  void retire(retired_node* node) noexcept { reclaimer_.retire(node); }

  /// Allocates a small node; prefer the intrusive overload on hot swap paths.
  template <class T, class Deleter>
  void retire(T* object, Deleter deleter) {
    struct node final : retired_node {
      T* object;
      Deleter deleter;
      node(T* o, Deleter d) : object(o), deleter(std::move(d)) {}
    };
    auto* n = new node(object, std::move(deleter));
    n->reclaim = [](retired_node* base) {
      std::unique_ptr<node> self(static_cast<node*>(base));
      self->deleter(self->object);
    };
    reclaimer_.retire(n);
  }

  void barrier() {
    if (in_read_section()) throw std::logic_error("hotswap: barrier() called inside a read section of the same domain");
    [[maybe_unused]] const auto idle = offline_while_waiting();
    reclaimer_.barrier();
  }

  bool poll() { return reclaimer_.poll(); }

  /// Whether a background thread reclaims (reclaim_mode::background), so that
  /// a waiter can sleep until it does instead of driving rounds with poll().
  bool reclaims_in_background() const noexcept { return reclaimer_.background(); }

  /// Objects retired whose deleters have not run yet.
  std::size_t backlog() const noexcept { return reclaimer_.backlog(); }

  grace_stats grace_statistics() const noexcept { return grace_.stats(); }
  reclaim_stats reclaim_statistics() const noexcept { return reclaimer_.stats(); }
  const Grace& grace() const noexcept { return grace_; }

  /// For a thread about to sleep until the reclaimer has done something
  /// (barrier(), slot::wait_for_room()): a policy whose online threads hold
  /// grace periods until they announce (qsbr_grace) takes it offline until
  /// the returned scope ends; other policies have nothing to do.
  auto offline_while_waiting() noexcept {
    if constexpr (requires(Grace& g) { g.this_thread_offline_scope(); })
      return grace_.this_thread_offline_scope();
    else
      return 0;
  }

 private:
  Grace grace_;
  detail::reclaimer<Grace> reclaimer_;  // after grace_: destroyed first, drains into it
};

/// The default domain: epoch announce + lazy membarrier.
using domain = basic_domain<epoch_grace>;

}  // namespace hotswap
