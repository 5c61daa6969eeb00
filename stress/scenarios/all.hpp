// Every scenario the rig knows, in the order `--scenario all` runs them.
//
// Adding one (plugin, http, db, config): write scenarios/NAME.hpp after
// scenario.hpp's contract, include it here and append it to the list. Every
// backend then runs it; nothing else changes.
#pragma once

#include "memory.hpp"
#include "plugin.hpp"

namespace hotswap::stress {

template <class... S>
struct scenario_list {};

using all_scenarios = scenario_list<memory_scenario, plugin_scenario>;

}  // namespace hotswap::stress
