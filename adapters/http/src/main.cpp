// hotswap-httpd: the HTTP server whose application swaps under load.
// SIGTERM/SIGINT: stop accepting, finish requests in flight, exit 0.
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cstdio>
#include <hotswap/http/server.hpp>

int main(int argc, char** argv) {
  namespace h = hotswap::http;
  try {
    const h::command_line cl = h::parse_command_line(argc, argv);
    if (cl.help) {
      std::fputs(h::usage(), stdout);
      return 0;
    }
    h::server s(cl.config);
    boost::asio::io_context signals_io;
    boost::asio::signal_set signals(signals_io, SIGTERM, SIGINT);
    s.start();
    std::fprintf(stderr, "hotswap-httpd: serving on %s:%u, admin on port %u\n", cl.config.address.c_str(),
                 static_cast<unsigned>(s.port()), static_cast<unsigned>(s.admin_port()));
    signals.async_wait([&](const boost::system::error_code&, int sig) {
      std::fprintf(stderr, "hotswap-httpd: signal %d: finishing requests in flight\n", sig);
      s.stop();
    });
    signals_io.run();
    s.wait();
    std::fprintf(stderr, "hotswap-httpd: stopped\n");
    return 0;
  } catch (const h::config_error& e) {
    std::fprintf(stderr, "hotswap-httpd: %s\n(see --help)\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hotswap-httpd: %s\n", e.what());
    return 1;
  }
}
