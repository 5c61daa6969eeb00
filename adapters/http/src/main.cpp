// hotswap-httpd: the HTTP server whose application swaps under load. Its
// settings come from a TOML file that it follows while it runs (README.md).
// SIGTERM/SIGINT: stop accepting, finish requests in flight, exit 0.
// POST /admin/upgrade: a new binary takes over (upgrade.hpp); this one exits 0.
#include <signal.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <CLI/CLI.hpp>
#include <cstdio>
#include <hotswap/http/settings_file.hpp>
#include <string_view>

#ifndef HOTSWAP_HTTPD_BUILD
#define HOTSWAP_HTTPD_BUILD "main"  // which build of the server this is (hotswap-httpd-alt: "alt")
#endif

namespace {

/// The exit status, as adapters/http/README.md documents it.
enum exit_code : int {
  stopped = 0,         ///< stopped by SIGTERM/SIGINT after finishing requests in flight, or upgraded (or --help)
  failed = 1,          ///< could not start: a port taken, a module that does not load, a failed takeover, ...
  usage_error = 2,     ///< the command line was refused
  bad_settings = 3,    ///< the settings file is missing or invalid (file:line:column on stderr)
};

constexpr const char* footer = R"(The settings file is TOML; a save while the server runs applies limits,
timeouts, routes, version policies and admin rules at once (adapters/http/README.md).
POST /admin/upgrade {"binary": PATH} starts PATH with this command line plus
--takeover SOCKET; it takes over the listeners and idle connections.

Exit status: 0 stopped by SIGTERM/SIGINT, or handed over to a new binary (also --help);
1 could not start; 2 the command line was refused; 3 the settings file is missing or invalid.)";

/// What an upgrade starts the next binary with: our arguments without --takeover.
std::vector<std::string> arguments_without_takeover(int argc, char** argv) {
  std::vector<std::string> out;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--takeover") ++i;
    else if (!a.starts_with("--takeover=")) out.emplace_back(a);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  namespace h = hotswap::http;
  CLI::App app{"An HTTP/1.1 server whose application is a hot-swappable module (app_api.h).", "hotswap-httpd"};
  app.footer(footer);
  std::string file;
  h::process_start how;
  app.add_option("-c,--config", file, "the settings file (TOML), followed while the server runs")->required();
  app.add_option("--takeover", how.takeover_socket,
                 "take over the listeners and connections of the server that started us (set by POST /admin/upgrade)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int status = app.exit(e);  // prints --help, or the error and a pointer to --help
    return status == 0 ? stopped : usage_error;
  }
  how.arguments = arguments_without_takeover(argc, argv);
  auto fail = [&](const char* why, int status) {
    if (!how.takeover_socket.empty()) h::report_takeover_failure(how.takeover_socket, why);
    return status;
  };
  // Outlives the server: a SIGTERM while it winds down (after an upgrade too) is ours, not the default action.
  boost::asio::io_context signals_io;
  boost::asio::signal_set signals(signals_io, SIGTERM, SIGINT);
  try {
    {
      const bool taking_over = !how.takeover_socket.empty();
      h::settings_file httpd(file, {}, how);
      h::server& s = httpd.server();
      s.on_upgraded([&] { boost::asio::post(signals_io, [&] { signals.cancel(); }); });
      httpd.start();
      std::fprintf(stderr, "hotswap-httpd: serving on %s:%u, admin on port %u (build %s%s)\n",
                   httpd.settings().read()->string("server.address").c_str(), static_cast<unsigned>(s.port()),
                   static_cast<unsigned>(s.admin_port()), HOTSWAP_HTTPD_BUILD, taking_over ? ", taken over" : "");
      signals.async_wait([&](const boost::system::error_code& ec, int sig) {
        if (ec) return;  // cancelled: handed over to a new binary
        std::fprintf(stderr, "hotswap-httpd: signal %d: finishing requests in flight\n", sig);
        httpd.stop();
      });
      signals_io.run();
      httpd.wait();
    }  // the server and the file's watch are gone, with every thread but this one
    // A stop signal from here on finds nothing to finish: leave it pending while we exit 0 (the
    // kernel's pool threads, which can outlive the server, block it as well: spare_threads.hpp).
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    std::fprintf(stderr, "hotswap-httpd: stopped\n");
    return stopped;
  } catch (const hotswap::config::config_exception& e) {  // file:line:column: why
    std::fprintf(stderr, "hotswap-httpd: %s\n", e.what());
    return fail(e.what(), bad_settings);
  } catch (const h::config_error& e) {  // a setting the server refused (names its key)
    std::fprintf(stderr, "hotswap-httpd: %s: %s\n", file.c_str(), e.what());
    return fail(e.what(), bad_settings);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hotswap-httpd: %s\n", e.what());
    return fail(e.what(), failed);
  }
}
