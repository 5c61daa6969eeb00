// The preflight: load a candidate in a throwaway child process first.
//
// Some failures cannot be caught in-process: a constructor that dereferences
// null, a dynamic-loader assertion on a malformed file (ld.so then exits the
// whole process with status 127), a plugin that calls exit(), or one that
// hangs in a constructor. The preflight spawns hotswap-preflight (a small
// program, kernel/modules/tools/preflight.cpp) with the candidate's checked
// bytes in a sealed memfd (and its checked dependencies in memfds of their
// own, loaded first as the host does); the child dlopens the bytes,
// checks the descriptor, and (run_hooks) runs startup, self_test and shutdown
// against a stub host, then reports one line over a pipe. Anything but "ok"
// before the deadline (a signal, an exit status, silence) refuses the swap
// with preflight_failed, and the host has run none of the candidate's code.
//
// It narrows, not closes, the gap: code that misbehaves only later, only
// under the host's real state, or only on the second load still runs
// in-process, where a plugin that corrupts memory can take the host down.
// Cost: one posix_spawn, one extra dlopen and the hooks; see
// results/bench-module.md.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <hotswap/detail/unique_fd.hpp>

#include "dependency_check.hpp"
#include "descriptor_check.hpp"
#include <hotswap/module/error.hpp>
#include "source.hpp"

#ifndef HOTSWAP_PREFLIGHT_HELPER
#define HOTSWAP_PREFLIGHT_HELPER ""
#endif

namespace hotswap::modules {

struct preflight_options {
  /// The hotswap-preflight program (CMake points the default at the built or
  /// installed one through HOTSWAP_PREFLIGHT_HELPER).
  std::filesystem::path helper = HOTSWAP_PREFLIGHT_HELPER;
  /// Run startup, self_test and shutdown in the child too (they must then
  /// tolerate running twice, e.g. not hold an exclusive resource the serving
  /// version holds). Off: only constructors, the entry point and the checks.
  bool run_hooks = true;
  std::chrono::nanoseconds deadline = std::chrono::seconds(10);
  /// Passes the loader remembers by content (preflight_memo.hpp): the same
  /// bytes for the same interface are not tried in a child again. 0: every time.
  std::size_t remembered_passes = 64;
};

namespace detail {

inline std::string describe_status(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = ::sigabbrev_np(sig);
    return "the candidate killed its test process with signal " + std::to_string(sig) + " (SIG" +
           (name != nullptr ? name : "?") + ")";
  }
  if (WIFEXITED(status)) return "the test process exited with status " + std::to_string(WEXITSTATUS(status)) + " before reporting";
  return "the test process ended abnormally";
}

}  // namespace detail

namespace detail {
inline hotswap::detail::unique_fd sealed_memfd(const plugin_file& f) {
  hotswap::detail::unique_fd fd(::memfd_create("hs.preflight", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) return fd;
  for (std::size_t done = 0; done < f.bytes->size();) {
    const ssize_t n = ::write(fd.get(), f.bytes->data() + done, f.bytes->size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return hotswap::detail::unique_fd();
    done += static_cast<std::size_t>(n);
  }
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) return hotswap::detail::unique_fd();
  return fd;
}
}  // namespace detail

/// Throws module_error(preflight_failed) unless the candidate passes in a child process.
inline void run_preflight(const plugin_file& file, const std::vector<checked_dependency>& deps,
                          const interface_id& expected, const preflight_options& options) {
  auto refuse = [&](const std::string& cause) {
    return module_error(module_errc::preflight_failed, file.path, "preflight failed: " + cause);
  };
  auto sys_fail = [&](const char* what) { return refuse(std::string(what) + ": " + std::strerror(errno)); };
  if (options.helper.empty() || ::access(options.helper.c_str(), X_OK) != 0)
    throw refuse("the helper program '" + options.helper.string() + "' is not available");

  hotswap::detail::unique_fd image = detail::sealed_memfd(file);
  if (!image) throw sys_fail("memfd");
  std::vector<hotswap::detail::unique_fd> dep_images;
  for (const checked_dependency& d : deps) {
    dep_images.push_back(detail::sealed_memfd(d.file));
    if (!dep_images.back()) throw sys_fail("memfd");
  }
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw sys_fail("pipe");
  hotswap::detail::unique_fd report_read(fds[0]), report_write(fds[1]);

  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_adddup2(&actions, image.get(), 3);  // dup2 clears FD_CLOEXEC on the copy
  ::posix_spawn_file_actions_adddup2(&actions, report_write.get(), 4);
  const std::string version = std::to_string(expected.version), table = std::to_string(expected.table_size);
  std::vector<std::string> args = {options.helper.string(), expected.name, version, table, options.run_hooks ? "hooks" : "load"};
  for (std::size_t i = 0; i < dep_images.size(); ++i) {  // dependencies at fd 5, 6, ...: loaded first
    ::posix_spawn_file_actions_adddup2(&actions, dep_images[i].get(), static_cast<int>(5 + i));
    args.push_back(std::to_string(5 + i));
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  char* envp[] = {nullptr};  // no LD_PRELOAD or LD_LIBRARY_PATH of ours in the child
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, options.helper.c_str(), &actions, nullptr, argv.data(), envp);
  ::posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    errno = rc;
    throw sys_fail("posix_spawn");
  }
  report_write.reset();  // the child holds the only write end: EOF when it ends

  std::string report;
  const auto until = std::chrono::steady_clock::now() + options.deadline;
  bool timed_out = false;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{report_read.get(), POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(left.count()) + 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;  // the deadline check above decides
    char buf[512];
    const ssize_t got = ::read(report_read.get(), buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;  // EOF: the child is gone or closed its report
    if (report.size() < 4096) report.append(buf, static_cast<std::size_t>(got));
  }
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out)
    throw refuse("the test process did not finish within " +
                 std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(options.deadline).count()) +
                 " ms (a hung constructor or hook?); killed");
  if (report.starts_with("ok\n") && WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
  if (report.starts_with("refused "))
    throw refuse(report.substr(8, report.find('\n') == std::string::npos ? std::string::npos : report.find('\n') - 8));
  throw refuse(detail::describe_status(status));
}

}  // namespace hotswap::modules
