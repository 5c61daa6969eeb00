// The modules and watch layers from a package consumer: load the plugin built
// with hotswap_add_plugin() through a registry, swap it for its second build
// with the preflight on (the package's own hotswap-preflight runs both), call
// it; watch its folder.
#include <hotswap/module/module.hpp>
#include <hotswap/watch.hpp>

#include <cstdio>
#include <exception>
#include <filesystem>

#include "consumer_api.h"

int main() try {
  const std::filesystem::path dir = PLUGIN_DIR;
  hotswap::domain dom;
  hotswap::modules::registry mods(dom, {.loader = {.policy = {.allowed_dir = dir}}, .preflight = true});
  mods.add<consumer_api>("consumer", "answer", dir / "consumer_plugin.so");
  mods.swap("consumer", "answer", dir / "consumer_plugin_v2.so");
  const int seen = mods.get<consumer_api>("answer").call([](const consumer_api& a) { return a.answer(); });
  const auto preflights = mods.counters().loads.preflights;
  hotswap::watch::watcher watch(dir, {}, [](const hotswap::watch::file_change&) {});
  std::printf("consumer's plugin answers %d after a swap; %llu preflights ran\n", seen,
              static_cast<unsigned long long>(preflights));
  return seen == 43 && preflights == 2 ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "consumer_layers: %s\n", e.what());
  return 1;
}
