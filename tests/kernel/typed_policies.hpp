// GoogleTest's view of the shared policy list: every kernel test is a typed
// test, instantiated once per policy.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include <hotswap/hotswap.hpp>
#include <policies.hpp>

namespace hotswap::testing {

using all_policy_types = all_policies::as<::testing::Types>;

struct policy_names {
  template <class P>
  static std::string GetName(int) { return P::name; }
};

}  // namespace hotswap::testing
