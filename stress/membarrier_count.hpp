// Counts membarrier() calls made by anything in this process (the hotswap
// kernel and liburcu alike), so that backends are compared on one measure.
#pragma once

#include <cstdint>

namespace hotswap::stress {

/// membarrier() calls that make other CPUs fence (PRIVATE_EXPEDITED, SHARED,
/// GLOBAL_EXPEDITED) since start; -1 if they cannot be counted in this build.
std::int64_t membarrier_syscalls() noexcept;

}  // namespace hotswap::stress
