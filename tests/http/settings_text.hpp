// The text of a hotswap-httpd settings file for a test server (the TOML file
// hotswap-httpd reads with -c/--config, adapters/http/README.md): ephemeral
// loopback ports (the server names them in its "serving on" line), one worker,
// the greeting application at /. Shared by the tests that start hotswap-httpd
// as a process (tests/http's daemon, tests/fleet's hosts).
//
//   std::ofstream(dir / "httpd.toml") << httpd_settings_text({plugins, dir / "shadow", token},
//                                                           "admin.socket = \"/tmp/a.sock\"\n");
#pragma once

#include <filesystem>
#include <string>

namespace hotswap::http::testing {

/// The files a test server uses: server.plugin_dir, server.shadow_dir, admin.token_file.
struct settings_paths {
  std::filesystem::path plugin_dir, shadow_dir, token_file;
};

/// A TOML basic string holding `text`.
inline std::string toml_string(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

/// The settings file's text; `more`: more top-level lines, written before the
/// routes table (dotted keys: "limits.max_connections = 10\n").
inline std::string httpd_settings_text(const settings_paths& paths, const std::string& more = {}) {
  return "server.port = 0\nserver.threads = 1\nserver.plugin_dir = " + toml_string(paths.plugin_dir.string()) +
         "\nserver.shadow_dir = " + toml_string(paths.shadow_dir.string()) +
         "\nadmin.port = 0\nadmin.token_file = " + toml_string(paths.token_file.string()) + "\n" + more +
         "\n[[routes]]\nprefix = \"/\"\nmodule = \"greeting\"\nfile = \"greeting-1.so\"\n";
}

}  // namespace hotswap::http::testing
