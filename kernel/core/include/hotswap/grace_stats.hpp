// What a grace policy counts about its own grace periods.
//
// Shared by every policy (epoch_grace, qsbr_grace, the test-only references)
// and by basic_domain, which hands it out: a neutral header, so that the
// domain does not need any one policy for it.
#pragma once

#include <cstdint>

namespace hotswap {

/// Counters of one domain's grace periods. Approximate while they change.
struct grace_stats {
  std::uint64_t grace_periods = 0;
  std::uint64_t membarriers = 0;
  std::uint64_t stalls_reported = 0;
  std::uint64_t sleeps = 0;  ///< futex sleeps of grace periods waiting for a reader to leave
};

}  // namespace hotswap
