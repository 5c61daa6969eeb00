// Every backend the rig can run, in the order `--backend all` runs them.
//
// Adding one: write backends/NAME.hpp after backend.hpp's contract, a
// backends/NAME.cpp returning make_backend_entry<...>(), declare it below and
// list it in registry.cpp.
#pragma once

#include <string_view>
#include <vector>

namespace hotswap::stress {

struct backend_entry;

backend_entry epoch_membarrier_entry();
backend_entry epoch_fence_entry();
backend_entry cds_urcu_entry();
backend_entry urcu_memb_sync_entry();
backend_entry urcu_memb_call_rcu_entry();
backend_entry shared_mutex_entry();
backend_entry atomic_shared_ptr_entry();
backend_entry broken_entry();  // self-test only: deliberately wrong

const std::vector<backend_entry>& all_backends();
std::vector<std::string_view> all_scenario_names();

}  // namespace hotswap::stress
