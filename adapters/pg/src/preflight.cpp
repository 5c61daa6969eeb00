// preflight_in_fork: fork, load in the child, one line back over a pipe.
#include "preflight.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include <hotswap/module/dynamic_loader_lock.hpp>
#include <hotswap/unique_fd.hpp>

namespace hotswap::pg {

namespace {

using clock = std::chrono::steady_clock;

void write_all(int fd, const std::string& s) {
  for (std::size_t done = 0; done < s.size();) {
    const ssize_t n = ::write(fd, s.data() + done, s.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

[[noreturn]] void run_child(int report, const host_settings& settings, const std::string& name,
                            const std::filesystem::path& file, void (*in_child)()) {
  in_child();
  std::string line;
  try {
    // Never destroyed: the child ends with _exit(), below.
    module_host* host = module_host::create(settings).release();
    loaded_version v = host->load("preflight", name, file);
    line = "ok " + v.sha256;
  } catch (const modules::module_error& e) {
    line = std::string("refused ") + sqlstate_of(e.code()) + " " + e.what();
  } catch (const std::exception& e) {
    line = std::string("refused 38000 ") + e.what();
  } catch (...) {
    line = "refused 38000 unknown exception";
  }
  write_all(report, line);
  ::_exit(0);  // no destructors, no atexit: the registry's unloads, the backend's exit callbacks
}

std::string describe(int status) {
  if (WIFSIGNALED(status)) {
    const char* name = ::sigabbrev_np(WTERMSIG(status));
    return "the candidate killed the preflight process with signal " + std::to_string(WTERMSIG(status)) + " (SIG" +
           (name != nullptr ? name : "?") + ")";
  }
  if (WIFEXITED(status)) return "the preflight process exited with status " + std::to_string(WEXITSTATUS(status));
  return "the preflight process ended abnormally";
}

}  // namespace

preflight_outcome preflight_in_fork(const host_settings& settings, const std::string& name,
                                    const std::filesystem::path& file, std::chrono::milliseconds deadline,
                                    void (*in_child)()) {
  const auto start = clock::now();
  preflight_outcome out;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    out.why = std::string("preflight: pipe: ") + ::strerror(errno);
    return out;
  }
  hotswap::unique_fd read_end(fds[0]), write_end(fds[1]);
  // The kernel's fork handlers (detail/fork_guard.hpp) hold its dlopen/dlclose lock across
  // fork(), so the child starts with ld.so idle and no unload counted for workers it lacks.
  const pid_t pid = ::fork();
  if (pid < 0) {
    out.why = std::string("preflight: fork: ") + ::strerror(errno);
    return out;
  }
  if (pid == 0) run_child(write_end.get(), settings, name, file, in_child);
  write_end.reset();

  std::string report;
  bool timed_out = false;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(start + deadline - clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{read_end.get(), POLLIN, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(left.count()));
    if (rc < 0 && errno == EINTR) continue;  // a backend takes signals (timeouts, interrupts): keep waiting
    if (rc <= 0) continue;
    char buffer[512];
    const ssize_t n = ::read(read_end.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the child closed its end: it is done or dead
    report.append(buffer, static_cast<std::size_t>(n));
  }
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  out.took = clock::now() - start;
  if (timed_out) {
    out.why = "the preflight process did not finish within " + std::to_string(deadline.count()) + " ms";
  } else if (report.rfind("ok ", 0) == 0) {
    out.passed = true;
    out.sha256 = report.substr(3);
  } else if (report.rfind("refused ", 0) == 0 && report.size() > 14) {
    out.sqlstate = report.substr(8, 5);
    out.why = report.substr(14);
  } else {
    out.why = describe(status);
  }
  return out;
}

}  // namespace hotswap::pg
