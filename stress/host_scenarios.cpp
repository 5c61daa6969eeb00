// The end-to-end scenarios built into hotswap-stress, in the order
// `--scenario all` runs them (after the kernel scenarios). Each adapter adds
// its own when it exists.
#include "host_scenario.hpp"

namespace hotswap::stress {

#ifdef HOTSWAP_STRESS_DB
std::vector<host_case> run_db_scenario(const host_config& config);  // scenarios/db.cpp
#endif
#ifdef HOTSWAP_STRESS_CONFIG
std::vector<host_case> run_config_scenario(const host_config& config);  // scenarios/config.cpp
#endif
#ifdef HOTSWAP_STRESS_HTTP
std::vector<host_case> run_http_scenario(const host_config& config);  // scenarios/http.cpp
#endif

const std::vector<host_scenario_entry>& all_host_scenarios() {
  static const std::vector<host_scenario_entry> list = {
#ifdef HOTSWAP_STRESS_DB
      {"db", "SQLite connections under load while their function container is swapped (adapters/db)",
       &run_db_scenario},
#endif
#ifdef HOTSWAP_STRESS_CONFIG
      {"config", "a TOML file saved while readers run: save-to-visible latency, reader cost, no torn snapshot",
       &run_config_scenario},
#endif
#ifdef HOTSWAP_STRESS_HTTP
      {"http", "hotswap-httpd on loopback under load, its application swapped every 50 ms (adapters/http)",
       &run_http_scenario},
#endif
  };
  return list;
}

}  // namespace hotswap::stress
