#include "registry.hpp"

#include "rig.hpp"

namespace hotswap::stress {

const std::vector<backend_entry>& all_backends() {
  static const std::vector<backend_entry> list = {
      epoch_membarrier_entry(),  // hotswap::domain as shipped: the default backend
      epoch_fence_entry(),       //
      cds_urcu_entry(),          //
      urcu_memb_sync_entry(),    //
      urcu_memb_call_rcu_entry(),
      shared_mutex_entry(),      //
      atomic_shared_ptr_entry(),
      broken_entry(),            // self-test of the checks, never in `all`
  };
  return list;
}

namespace {
template <class... S>
std::vector<std::string_view> names(scenario_list<S...>) {
  return {S::name...};
}
}  // namespace

std::vector<std::string_view> all_scenario_names() { return names(all_scenarios{}); }

}  // namespace hotswap::stress
