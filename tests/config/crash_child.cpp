// The crash tests' child: opens the store on DIR/app.toml, makes one API
// update (a = 2) and writes it to disk, killing itself with SIGKILL right
// after write step STEP (0..4, see config::write_step). Exit 0 if it was not
// killed (STEP out of range), 1 on any failure before that.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <hotswap/config/store.hpp>

#include "crash_schema.hpp"

int main(int argc, char** argv) {
  if (argc != 3) return 1;
  using namespace hotswap::config;
  const int kill_at = std::atoi(argv[2]);
  hotswap::domain dom;
  store_options options;
  options.on_write_step = [kill_at](write_step s) {
    if (static_cast<int>(s) == kill_at) std::raise(SIGKILL);
  };
  store cfg(dom, std::string(argv[1]) + "/app.toml", crash_schema(), options);
  if (!cfg.update(cfg.version(), {{"a", value{std::int64_t{2}}}})) return 1;
  const auto written = cfg.write_to_disk();
  if (!written) {
    std::fprintf(stderr, "%s\n", written.message.c_str());
    return 1;
  }
  return 0;
}
