// The plugin scenario on every backend: real .so versions through the module
// loader, unloaded on each backend's reclaimer.
#include "plugin.hpp"

#include "../backends/all.hpp"
#include "../registry.hpp"

namespace hotswap::stress {

scenario_entry plugin_scenario_entry() { return make_scenario_entry<plugin_scenario>(all_backends_list{}); }

}  // namespace hotswap::stress
