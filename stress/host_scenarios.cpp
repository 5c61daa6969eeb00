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
#ifdef HOTSWAP_STRESS_PG
std::vector<host_case> run_pg_scenario(const host_config& config);  // scenarios/pg.cpp
#else
// Listed in every build, so the main job says why it did not run.
std::vector<host_case> run_pg_scenario(const host_config&) {
  host_case c;
  c.name = "swapping";
  c.skip_reason = "built without PostgreSQL: adapters/pg needs postgresql-server-dev-15 (pg_config) and libpq-dev at "
                  "configure time, and is left out of sanitizer builds (scripts/setup.sh installs PostgreSQL)";
  return {c};
}
#endif
#ifdef HOTSWAP_STRESS_HTTP
std::vector<host_case> run_http_scenario(const host_config& config);    // scenarios/http.cpp
std::vector<host_case> run_canary_scenario(const host_config& config);  // scenarios/canary.cpp
std::vector<host_case> run_upgrade_scenario(const host_config& config);  // scenarios/upgrade.cpp
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
      {"pg", "PostgreSQL 15 sessions in transactions while hotswap_pg swaps their container (adapters/pg)",
       &run_pg_scenario},
#ifdef HOTSWAP_STRESS_HTTP
      {"http", "hotswap-httpd on loopback under load, its application swapped every 50 ms (adapters/http)",
       &run_http_scenario},
      {"canary", "hotswap-httpd under load while bad and good candidates run as canaries (adapters/http)",
       &run_canary_scenario},
      {"upgrade", "hotswap-httpd's binary replaced under load every 500 ms, beside nginx's and HAProxy's (adapters/http)",
       &run_upgrade_scenario},
#endif
  };
  return list;
}

}  // namespace hotswap::stress
