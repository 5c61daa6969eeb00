// hotswap::config from a package consumer: parse a configuration, read a value.
#include <hotswap/config/loader.hpp>

#include <cstdio>

int main() {
  const hotswap::config::load_result r = hotswap::config::load("port = 8080\n", "inline.toml", nullptr);
  if (!r) return 1;
  const auto port = r.doc->values.integer("port");
  std::printf("config_user reads port %lld\n", static_cast<long long>(port));
  return port == 8080 ? 0 : 1;
}
