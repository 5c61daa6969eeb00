// The end-to-end scenarios built into hotswap-stress, in the order
// `--scenario all` runs them (after the kernel scenarios). Each adapter adds
// its own when it exists.
#include "host_scenario.hpp"

namespace hotswap::stress {

const std::vector<host_scenario_entry>& all_host_scenarios() {
  static const std::vector<host_scenario_entry> list = {};
  return list;
}

}  // namespace hotswap::stress
