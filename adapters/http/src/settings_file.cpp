#include <hotswap/config/httpd_settings.hpp>
#include <hotswap/http/admin_request.hpp>
#include <hotswap/http/settings_file.hpp>

#include <cstdio>
#include <system_error>

namespace hotswap::http {

namespace {

// One line on stderr for everything the store reports, accepted saves too:
// an operator who saved the file sees that it took.
void log_to_stderr(config::log_level level, const std::string& message) {
  const char* tag = level == config::log_level::error ? "error" : level == config::log_level::warning ? "warning" : "info";
  std::fprintf(stderr, "hotswap-httpd: settings %s: %s\n", tag, message.c_str());
}

}  // namespace

config::schema settings_file::schema() {
  config::schema s = config::httpd_schema();
  // A route's file must be a plugin the server could load: refused at its
  // line, before the save is applied, rather than failing inside the server.
  s.validator([](const config::snapshot& c) -> std::optional<config::veto> {
    const std::filesystem::path dir = c.string("server.plugin_dir");
    for (std::size_t i = 0, n = c.count("routes"); i < n; ++i) {
      const std::string key = "routes[" + std::to_string(i) + "].file";
      const auto name = c.get<std::string>(key);
      if (!name) continue;
      const auto file = resolve_plugin_file(dir, *name);
      if (const auto* refusal = std::get_if<admin_refusal>(&file)) return config::veto{key, refusal->message};
      std::error_code ec;
      if (!std::filesystem::is_regular_file(std::get<std::filesystem::path>(file), ec))
        return config::veto{key, "no file '" + *name + "' in server.plugin_dir " + dir.string()};
    }
    return std::nullopt;
  });
  return s;
}

settings_file::settings_file(std::filesystem::path file, config::store_options options, process_start how) {
  if (!options.log) options.log = log_to_stderr;
  store_ = std::make_unique<config::store>(domain_, std::move(file), schema(), std::move(options));
  server_config c = server_config_from(*store_->read());
  c.takeover_socket = std::move(how.takeover_socket);
  c.arguments = std::move(how.arguments);
  server_ = std::make_unique<http::server>(std::move(c));
  subscription_ = store_->subscribe([this](const config::snapshot& now, const std::vector<config::change>&) { on_change(now); });
}

settings_file::~settings_file() {
  stop();
  store_->unsubscribe(subscription_);
}

void settings_file::start() {
  server_->start();
  store_->start();
}

void settings_file::stop() {
  store_->stop();
  server_->stop();
}

void settings_file::on_change(const config::snapshot& now) {
  const server::apply_report report = server_->apply(server_config_from(now));
  const std::string file = store_->files().main_file().string();
  for (const std::string& key : report.restart_needed)
    std::fprintf(stderr, "hotswap-httpd: settings warning: %s: %s changed; it takes effect at the next start\n",
                 file.c_str(), key.c_str());
  for (const std::string& why : report.refused)
    std::fprintf(stderr, "hotswap-httpd: settings error: %s: not applied: %s\n", file.c_str(), why.c_str());
}

}  // namespace hotswap::http
