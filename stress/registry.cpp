#include "registry.hpp"

#include <algorithm>

namespace hotswap::stress {

const std::vector<scenario_entry>& all_scenarios() {
  static const std::vector<scenario_entry> list = {memory_scenario_entry(), plugin_scenario_entry()};
  return list;
}

const std::vector<backend_info>& all_backends() {
  static const std::vector<backend_info> list = [] {
    std::vector<backend_info> out;
    for (const auto& s : all_scenarios())
      for (const auto& r : s.runners)
        if (std::none_of(out.begin(), out.end(), [&](const backend_info& b) { return b.name == r.backend.name; }))
          out.push_back(r.backend);
    return out;
  }();
  return list;
}

}  // namespace hotswap::stress
