// Every kernel scenario the rig can run, each from its own source file, in the
// order `--scenario all` runs them; and the backends they run on.
//
// Adding a scenario: write scenarios/NAME.hpp after scenario.hpp's contract
// and scenarios/NAME.cpp returning make_scenario_entry<...>(backends), then
// declare the function below and list it in registry.cpp.
#pragma once

#include <vector>

#include "rig.hpp"

namespace hotswap::stress {

scenario_entry memory_scenario_entry();
scenario_entry plugin_scenario_entry();

const std::vector<scenario_entry>& all_scenarios();

/// Every backend some scenario runs on, in list order, each once.
const std::vector<backend_info>& all_backends();

}  // namespace hotswap::stress
