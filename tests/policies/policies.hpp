// The one list of reclamation policies that tests, the stress rig and the
// benchmarks run against: the shipped default in both reader modes, and the
// qsbr flavour, and the test-only references (never installed): libcds URCU
// and std::shared_mutex.
//
// Each entry names its domain type and how to build the domain's options.
// Typed tests instantiate every entry (tests/kernel), the rig wraps each in a
// backend (stress/backends), the benchmarks measure each (bench/).
#pragma once

#include <hotswap/domain.hpp>
#include <hotswap/options.hpp>
#include <hotswap/qsbr_grace.hpp>

#include "cds_urcu_grace.hpp"
#include "shared_mutex_grace.hpp"

namespace hotswap::testing {

struct epoch_membarrier {
  using domain_type = hotswap::domain;
  static constexpr const char* name = "epoch_membarrier";
  static domain_options options() {
    domain_options o;
    o.grace = grace_mode::automatic;  // membarrier where the kernel has it
    return o;
  }
};
struct epoch_fence {
  using domain_type = hotswap::domain;
  static constexpr const char* name = "epoch_fence";
  static domain_options options() {
    domain_options o;
    o.grace = grace_mode::fence;
    return o;
  }
};
struct qsbr {
  using domain_type = hotswap::qsbr_domain;
  static constexpr const char* name = "qsbr";
  static domain_options options() { return {}; }
};
struct cds_urcu {
  using domain_type = hotswap::cds_urcu_domain;
  static constexpr const char* name = "cds_urcu";
  static domain_options options() { return {}; }
};
struct shared_mutex_reference {
  using domain_type = hotswap::shared_mutex_domain;
  static constexpr const char* name = "shared_mutex";
  static domain_options options() { return {}; }
};

template <class... P>
struct policy_list {
  /// The same list as another template's arguments (::testing::Types, ...).
  template <template <class...> class To>
  using as = To<P...>;
};

#if defined(__SANITIZE_THREAD__)
// libcds orders its grace periods with fences, which ThreadSanitizer does not
// model: under TSan it reports the reclaimer's delete as racing with a reader
// (as the stress rig's `all` already leaves cds-urcu out there).
using all_policies = policy_list<epoch_membarrier, epoch_fence, qsbr, shared_mutex_reference>;
#else
using all_policies = policy_list<epoch_membarrier, epoch_fence, qsbr, cds_urcu, shared_mutex_reference>;
#endif

/// Where a test thread holds no reference and keeps running: a qsbr thread
/// announces a quiescent state there (else it would hold every grace period
/// until it exits); for the other policies there is nothing to do.
template <class Reader>
void quiescent_point(Reader& r) noexcept {
  if constexpr (requires { r.quiescent(); }) r.quiescent();
}

}  // namespace hotswap::testing
