// The policies every kernel test runs against, written once (typed tests).
#pragma once

#include <gtest/gtest.h>

#include <hotswap/cds_urcu_grace.hpp>
#include <hotswap/hotswap.hpp>

namespace hotswap::testing {

/// Each policy names its domain type and how a test builds one.
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

using all_policies = ::testing::Types<epoch_membarrier, epoch_fence, cds_urcu, shared_mutex_reference>;

struct policy_names {
  template <class P>
  static std::string GetName(int) { return P::name; }
};

}  // namespace hotswap::testing
