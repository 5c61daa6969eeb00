// The modules and watch layers from a package consumer: load the plugin built
// with hotswap_add_plugin() through a registry and call it; watch its folder.
#include <hotswap/module/module.hpp>
#include <hotswap/watch.hpp>

#include <cstdio>
#include <filesystem>

#include "consumer_api.h"

int main() {
  const std::filesystem::path plugin = PLUGIN_PATH;
  hotswap::domain dom;
  hotswap::modules::registry mods(dom, {.loader = {.policy = {.allowed_dir = plugin.parent_path()}}});
  mods.add<consumer_api>("consumer", "answer", plugin);
  const int seen = mods.get<consumer_api>("answer").call([](const consumer_api& a) { return a.answer(); });
  hotswap::watch::watcher watch(plugin.parent_path(), {}, [](const hotswap::watch::file_change&) {});
  std::printf("consumer's plugin answers %d\n", seen);
  return seen == 42 ? 0 : 1;
}
