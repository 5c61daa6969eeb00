// hotswap-httpd as a child process, for what only a whole process shows: its
// exit status, the files it leaves behind after SIGTERM, and running out of
// descriptors under a lower RLIMIT_NOFILE (in-process, the test's own sockets
// would share the server's descriptor table). Its stderr is collected; the
// ports come from its "serving on" line. Every wait is bounded.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "fixture.hpp"
#include "settings_text.hpp"

namespace hotswap::http::testing {

class daemon_process {
 public:
  /// Starts the built hotswap-httpd with `args`; `nofile`, if not 0, is the
  /// child's RLIMIT_NOFILE soft limit. It inherits no descriptor but stderr.
  explicit daemon_process(const std::vector<std::string>& args, rlim_t nofile = 0);
  ~daemon_process();  ///< kills and reaps the child if it still runs
  daemon_process(const daemon_process&) = delete;
  daemon_process& operator=(const daemon_process&) = delete;

  /// Waits for the "serving on" line. False if the child exited first or `limit` passed.
  bool wait_serving(std::chrono::milliseconds limit = std::chrono::seconds(60));
  std::uint16_t port() const noexcept { return port_; }
  std::uint16_t admin_port() const noexcept { return admin_port_; }

  /// SIGTERM, then waits for the exit: its exit status, 128 + signal if
  /// killed by one, or -1 if `limit` passed (the child is then killed).
  int terminate(std::chrono::milliseconds limit = std::chrono::seconds(60));
  /// Waits for the child to exit by itself: as terminate(), without the signal.
  int wait_exit(std::chrono::milliseconds limit = std::chrono::seconds(60));

  /// Everything the child wrote to stderr so far.
  const std::string& log();

 private:
  void drain(int wait_ms);  // appends what stderr has to log_
  bool reaped(int options);

  pid_t pid_ = -1;
  int stderr_ = -1;
  int status_ = 0;
  std::string log_;
  std::uint16_t port_ = 0, admin_port_ = 0;
};

/// A settings file for a daemon over `s`: ephemeral loopback ports, one
/// worker, the greeting application at /; `more`: more top-level lines
/// (dotted keys: "limits.max_connections = 10").
std::string daemon_settings(const scratch& s, const std::string& more = {});
/// Writes daemon_settings() to ROOT/httpd.toml: the arguments to run it.
std::vector<std::string> daemon_args(const scratch& s, const std::string& more = {});

}  // namespace hotswap::http::testing
