#include "daemon.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <stdexcept>

namespace hotswap::http::testing {

daemon_process::daemon_process(const std::vector<std::string>& args, rlim_t nofile) {
  std::vector<std::string> all{HOTSWAP_HTTPD};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  if (nofile != 0) limit.rlim_cur = nofile;
  pid_ = ::fork();
  if (pid_ == 0) {  // only async-signal-safe calls from here to exec
    ::dup2(pipe_fds[1], STDERR_FILENO);
    ::close_range(3, ~0u, 0);
    if (nofile != 0) ::setrlimit(RLIMIT_NOFILE, &limit);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  stderr_ = pipe_fds[0];
  if (pid_ < 0) throw std::runtime_error("fork failed");
}

daemon_process::~daemon_process() {
  if (pid_ > 0 && !reaped(WNOHANG)) {
    ::kill(pid_, SIGKILL);
    reaped(0);
  }
  if (stderr_ >= 0) ::close(stderr_);
}

bool daemon_process::reaped(int options) {
  if (pid_ <= 0) return true;
  if (::waitpid(pid_, &status_, options) != pid_) return false;
  pid_ = -1;
  return true;
}

void daemon_process::drain(int wait_ms) {
  pollfd p{stderr_, POLLIN, 0};
  if (stderr_ < 0 || ::poll(&p, 1, wait_ms) <= 0) return;
  char buf[4096];
  const ssize_t n = ::read(stderr_, buf, sizeof buf);
  if (n > 0) log_.append(buf, static_cast<std::size_t>(n));
  if (n == 0) {
    ::close(stderr_);
    stderr_ = -1;
  }
}

const std::string& daemon_process::log() {
  for (std::size_t before = ~std::size_t{0}; before != log_.size();) {
    before = log_.size();
    drain(0);
  }
  return log_;
}

bool daemon_process::wait_serving(std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    drain(20);
    const auto at = log_.find("serving on ");
    if (at != std::string::npos && log_.find('\n', at) != std::string::npos) {
      unsigned port = 0, admin = 0;
      const auto colon = log_.find(':', log_.find("on ", at) + 3);
      std::sscanf(log_.c_str() + colon + 1, "%u, admin on port %u", &port, &admin);
      port_ = static_cast<std::uint16_t>(port);
      admin_port_ = static_cast<std::uint16_t>(admin);
      return port_ != 0;
    }
    if (stderr_ < 0 || reaped(WNOHANG)) return false;
  }
  return false;
}

int daemon_process::terminate(std::chrono::milliseconds limit) {
  if (pid_ > 0) ::kill(pid_, SIGTERM);
  return wait_exit(limit);
}

int daemon_process::wait_exit(std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!reaped(WNOHANG)) {
    if (std::chrono::steady_clock::now() >= until) {
      ::kill(pid_, SIGKILL);
      reaped(0);
      return -1;
    }
    drain(10);
  }
  log();
  if (WIFEXITED(status_)) return WEXITSTATUS(status_);
  return WIFSIGNALED(status_) ? 128 + WTERMSIG(status_) : -1;
}

std::string daemon_settings(const scratch& s, const std::string& more) {
  return httpd_settings_text({s.plugins(), s.root() / "shadow", s.token_file()}, more);
}

std::vector<std::string> daemon_args(const scratch& s, const std::string& more) {
  const fs::path file = s.root() / "httpd.toml";
  std::ofstream(file) << daemon_settings(s, more);
  return {"--config", file.string()};
}

}  // namespace hotswap::http::testing
