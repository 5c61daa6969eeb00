// The memory scenario on every backend.
#include "memory.hpp"

#include "../backends/all.hpp"
#include "../registry.hpp"

namespace hotswap::stress {

scenario_entry memory_scenario_entry() { return make_scenario_entry<memory_scenario>(all_backends_list{}); }

}  // namespace hotswap::stress
