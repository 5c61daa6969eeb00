// Settings: the TOML file hotswap-httpd follows, its conversion, live edits
// (applied without a restart), refused edits (the serving settings keep
// serving, the error names file:line:column), the one spelling of the call
// policy, and the command line.
#include <fstream>
#include <nlohmann/json.hpp>

#include <hotswap/config/httpd_settings.hpp>
#include <hotswap/http/admin_request.hpp>
#include <hotswap/http/settings_file.hpp>

#include "daemon.hpp"

namespace hotswap::http::testing {
namespace {

using namespace std::chrono_literals;

// An editor's save: a new file renamed over the old one.
void save(const fs::path& file, const std::string& text) {
  const fs::path temp = file.string() + ".saving";
  std::ofstream(temp) << text;
  fs::rename(temp, file);
}

// Follows a settings file; records the store's report of every save.
struct followed {
  explicit followed(const scratch& dir, const std::string& text) : file(dir.root() / "httpd.toml") {
    save(file, text);
    config::store_options o;
    o.log = [](config::log_level, const std::string&) {};
    o.debounce = 5ms;
    o.on_save = [this](const config::save_report& r) {
      std::lock_guard lock(mutex);
      errors.push_back(r.error ? r.error->to_string() : std::string());
    };
    httpd = std::make_unique<settings_file>(file, o);
    httpd->start();
  }
  ~followed() {
    httpd->stop();
    httpd->wait();
  }
  // Saves `text` and waits until the store handled it; its error ("" if applied).
  std::string edit(const std::string& text) {
    save(file, text);
    EXPECT_TRUE(httpd->settings().sync(10s));
    std::lock_guard lock(mutex);
    return errors.empty() ? "no save handled" : errors.back();
  }
  probe_reply get(const std::string& target, const std::string& headers = {}) {
    probe_client c(httpd->server().port());
    probe_reply r;
    EXPECT_EQ(c.exchange(probe_client::get(target, headers), r), probe_error::none);
    return r;
  }

  fs::path file;
  std::mutex mutex;
  std::vector<std::string> errors;
  std::unique_ptr<settings_file> httpd;
};

TEST(http_config, the_settings_file_converts_to_the_server_config) {
  const scratch dir;
  const std::string text = daemon_settings(dir, "limits.max_body_bytes = 4096\ntimeouts.idle_ms = 250\n"
                                                "timeouts.upgrade_drain_ms = 1500\n"
                                                "version.policy = \"pinned\"\nadmin.uids = [7, 8]\n") +
                           "\n[[routes]]\nprefix = \"/slow\"\nmodule = \"slow\"\nfile = \"slow-1.so\"\npolicy = \"per-call\"\n";
  const fs::path file = dir.root() / "httpd.toml";
  save(file, text);
  hotswap::domain dom;
  config::store s(dom, file, settings_file::schema());
  const server_config c = server_config_from(*s.read());
  EXPECT_EQ(c.port, 0);
  EXPECT_EQ(c.threads, 1u);
  EXPECT_EQ(c.plugin_dir, dir.plugins());
  EXPECT_EQ(c.max_body_bytes, 4096u);
  EXPECT_EQ(c.max_header_bytes, 8192u);  // the default
  EXPECT_EQ(c.max_connections, 0u);      // absent: what the descriptor limit leaves
  EXPECT_EQ(c.idle_timeout, 250ms);
  EXPECT_EQ(c.upgrade_drain, 1500ms);
  EXPECT_EQ(c.upgrade_timeout, 60'000ms);  // the default
  EXPECT_TRUE(c.takeover_socket.empty()) << "command line only";
  EXPECT_EQ(c.policy, call_policy::pinned);
  EXPECT_EQ(c.admin_uids, (std::vector<uid_t>{7, 8}));
  ASSERT_EQ(c.routes.size(), 2u);
  EXPECT_EQ(c.routes[0], (route_config{"/", "greeting", "greeting-1.so", std::nullopt}));
  EXPECT_EQ(c.routes[1], (route_config{"/slow", "slow", "slow-1.so", call_policy::per_call}));
}

TEST(http_config, the_old_spelling_of_the_call_policy_is_refused_naming_the_new_one) {
  const scratch dir;
  const fs::path file = dir.root() / "httpd.toml";
  save(file, daemon_settings(dir, "version.policy = \"per-request\"\n"));
  hotswap::domain dom;
  try {
    config::store_options quiet;
    quiet.log = [](config::log_level, const std::string&) {};
    config::store s(dom, file, settings_file::schema(), quiet);
    FAIL() << "accepted";
  } catch (const config::config_exception& e) {
    EXPECT_NE(std::string(e.what()).find("httpd.toml:7:9: 'version.policy': \"per-request\" was renamed: write \"per-call\""),
              std::string::npos)
        << e.what();
  }
  // The admin API and the parser the server shares say the same.
  std::string why;
  EXPECT_FALSE(parse_call_policy("per-request", &why));
  EXPECT_NE(why.find("write \"per-call\""), std::string::npos) << why;
  const auto refused = parse_policy_request(R"({"policy":"per_request"})");
  ASSERT_TRUE(std::holds_alternative<admin_refusal>(refused));
  EXPECT_EQ(std::get<admin_refusal>(refused).status, 400);
  EXPECT_NE(std::get<admin_refusal>(refused).message.find("per-call"), std::string::npos);
  EXPECT_EQ(std::get<policy_request>(parse_policy_request(R"({"policy":"per-call"})")).policy, call_policy::per_call);
}

TEST(http_config, a_saved_limit_and_route_apply_without_a_restart) {
  const scratch dir;
  followed f(dir, daemon_settings(dir));
  const std::uint16_t port = f.httpd->server().port();
  EXPECT_EQ(f.get("/json").header("x-hotswap-build"), "greeting-1");  // "/" serves everything
  const std::string big_header = "X-Filler: " + std::string(3000, 'x') + "\r\n";
  EXPECT_EQ(f.get("/", big_header).status, 200);

  EXPECT_EQ(f.edit(daemon_settings(dir, "limits.max_header_bytes = 1024\n") +
                   "\n[[routes]]\nprefix = \"/json\"\nmodule = \"json\"\nfile = \"json-1.so\"\n"),
            "");
  EXPECT_EQ(f.httpd->server().port(), port);
  EXPECT_EQ(f.get("/json").header("x-hotswap-build"), "json-1");  // the new route, its module loaded
  EXPECT_EQ(f.get("/").header("x-hotswap-build"), "greeting-1");
  EXPECT_EQ(f.get("/", big_header).status, 431);                  // the new limit
  EXPECT_TRUE(f.httpd->server().restart_pending().empty());

  // A route removed: its path falls to "/" again.
  EXPECT_EQ(f.edit(daemon_settings(dir, "limits.max_header_bytes = 1024\n")), "");
  EXPECT_EQ(f.get("/json").header("x-hotswap-build"), "greeting-1");
}

TEST(http_config, a_bad_edit_names_file_line_and_column_and_the_old_settings_keep_serving) {
  const scratch dir;
  followed f(dir, daemon_settings(dir, "limits.max_header_bytes = 1024\n"));
  const std::string big_header = "X-Filler: " + std::string(3000, 'x') + "\r\n";
  ASSERT_EQ(f.get("/", big_header).status, 431);

  // Line 8: a limit below its minimum, in a file that also raises another limit.
  const std::string bad = daemon_settings(dir, "limits.max_header_bytes = 65536\nlimits.max_body_bytes = -1\n");
  const std::string error = f.edit(bad);
  EXPECT_NE(error.find("httpd.toml:8:8: 'limits.max_body_bytes': below the minimum 0"), std::string::npos) << error;
  EXPECT_EQ(f.get("/", big_header).status, 431);  // nothing of the bad file applied
  EXPECT_TRUE(fs::exists(dir.root() / "httpd.error.1.toml"));

  // A route to a file that is not in the plugin directory: refused at its line.
  const std::string missing = f.edit(daemon_settings(dir, "limits.max_header_bytes = 1024\n") +
                                     "\n[[routes]]\nprefix = \"/x\"\nmodule = \"x\"\nfile = \"nowhere.so\"\n");
  EXPECT_NE(missing.find("httpd.toml:17:1: 'routes[1].file': no file 'nowhere.so'"), std::string::npos) << missing;
  EXPECT_EQ(f.get("/x").header("x-hotswap-build"), "greeting-1");
}

TEST(http_config, a_setting_read_only_at_start_is_reported_as_needing_a_restart) {
  const scratch dir;
  followed f(dir, daemon_settings(dir));
  EXPECT_EQ(f.edit(daemon_settings(dir, "limits.max_header_bytes = 1024\n")
                       .replace(0, std::string("server.port = 0").size(), "server.port = 1")),
            "");
  EXPECT_EQ(f.httpd->server().restart_pending(), std::vector<std::string>{"server.port"});
  EXPECT_EQ(nlohmann::json::parse(f.httpd->server().status_json())["restart_needed"],
            nlohmann::json::array({"server.port"}));
}

TEST(http_config, the_command_line_refuses_and_the_settings_file_is_checked_at_start) {
  const scratch dir;
  daemon_process no_config(std::vector<std::string>{});
  EXPECT_EQ(no_config.wait_exit(), 2);
  EXPECT_NE(no_config.log().find("--config is required"), std::string::npos) << no_config.log();

  const fs::path file = dir.root() / "httpd.toml";
  save(file, daemon_settings(dir, "limits.max_nothing = 1\n"));
  daemon_process bad({"--config", file.string()});
  EXPECT_EQ(bad.wait_exit(), 3);
  EXPECT_NE(bad.log().find("httpd.toml:7:8: unknown key 'limits.max_nothing'"), std::string::npos) << bad.log();
}

TEST(http_admin_request, bearer_tokens_compare_whole) {
  EXPECT_TRUE(constant_time_equal("secret-token", "secret-token"));
  EXPECT_FALSE(constant_time_equal("secret-token", "secret-toke"));
  EXPECT_FALSE(constant_time_equal("", "x"));
  EXPECT_EQ(bearer_token("Bearer abc"), std::string_view("abc"));
  EXPECT_EQ(bearer_token("bearer abc"), std::string_view("abc"));
  EXPECT_FALSE(bearer_token("Basic abc"));
  EXPECT_FALSE(bearer_token("Bearer "));
}

}  // namespace
}  // namespace hotswap::http::testing
