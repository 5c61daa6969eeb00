// The preflight: load a candidate in a throwaway child process first.
//
// Some failures cannot be caught in-process: a constructor that dereferences
// null, a dynamic-loader assertion on a malformed file (ld.so then exits the
// whole process with status 127), a plugin that calls exit(), or one that
// hangs in a constructor. The preflight spawns hotswap-preflight (a small
// program, kernel/modules/tools/preflight.cpp) with the candidate's checked
// bytes in a sealed memfd (and its checked dependencies in memfds of their
// own, loaded first as the host does); the child dlopens the bytes,
// checks the descriptor (against the interface and the metadata note, as the
// host does), (run_hooks) runs startup, self_test and shutdown against a stub
// host, checks that nothing joined the global scope (global_scope.hpp) and
// that the candidate left no process running, then reports "ok". Anything
// else before the deadline refuses the swap with preflight_failed, and the
// host has run none of the candidate's code.
//
// The refusal says what was observed, not a guess: the child reports each
// stage it enters and any catchable fatal signal it receives together with
// its sender (another process, the child itself, or the kernel for a fault);
// the host waits for the child's exit (pidfd) rather than for the end of the
// report pipe, which a process the candidate started could hold open.
//
// Where the program is: preflight_options::helper (CMake compiles in the
// built or installed path; an installed package computes it from its own
// prefix), else hotswap-preflight next to the host's executable or in
// ../libexec/hotswap from it.
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
#include <sys/syscall.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <hotswap/unique_fd.hpp>

#include "dependency_check.hpp"
#include "descriptor_check.hpp"
#include <hotswap/module/error.hpp>
#include "source.hpp"
#include "../preflight_options.hpp"

namespace hotswap::modules::detail {

/// What the child must find in the descriptor: the interface, and what the metadata note said.
struct preflight_expectation {
  interface_id interface;
  std::string module_name, build_version;
};

/// The helper to run: `configured` if executable, else one next to the host's
/// executable. Empty if none is; `tried` lists where it looked.
inline std::filesystem::path find_preflight_helper(const std::filesystem::path& configured, std::string& tried) {
  std::vector<std::filesystem::path> candidates;
  if (!configured.empty()) candidates.push_back(configured);
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    candidates.push_back(exe.parent_path() / "hotswap-preflight");
    candidates.push_back((exe.parent_path() / ".." / "libexec" / "hotswap" / "hotswap-preflight").lexically_normal());
  }
  for (const auto& c : candidates) {
    if (::access(c.c_str(), X_OK) == 0) return c;
    tried += (tried.empty() ? "'" : ", '") + c.string() + "'";
  }
  return {};
}

/// What the child reported: the last stage it entered, a signal it saw, its verdict.
struct child_report {
  std::string stage = "start", signal, verdict;
  bool complete = false;  ///< the verdict line ended

  void parse(const std::string& text) {
    std::size_t at = 0;
    for (std::size_t end; (end = text.find('\n', at)) != std::string::npos; at = end + 1) {
      const std::string_view line(text.data() + at, end - at);
      if (line.starts_with("at ")) stage = line.substr(3);
      else if (line.starts_with("signal ")) signal = line.substr(7);
      else if (line == "ok" || line.starts_with("refused ")) verdict = line, complete = true;
    }
  }
};

inline std::string signal_name(int sig) {
  const char* name = ::sigabbrev_np(sig);
  return "signal " + std::to_string(sig) + " (SIG" + (name != nullptr ? name : "?") + ")";
}

inline std::string describe_status(int status, const child_report& seen) {
  const std::string during = " during " + seen.stage;
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    std::string out = "the test process was ended by " + signal_name(sig) + during;
    if (!seen.signal.empty()) return out + "; it saw the signal " + seen.signal;
    if (sig == SIGKILL) return out + "; the host did not send it, and SIGKILL cannot be observed by its receiver";
    return out;
  }
  if (WIFEXITED(status))
    return "the test process exited with status " + std::to_string(WEXITSTATUS(status)) + during + " before reporting";
  return "the test process ended abnormally" + during;
}

inline hotswap::unique_fd sealed_memfd(const plugin_file& f) {
  hotswap::unique_fd fd(::memfd_create("hs.preflight", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) return fd;
  for (std::size_t done = 0; done < f.bytes->size();) {
    const ssize_t n = ::write(fd.get(), f.bytes->data() + done, f.bytes->size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return hotswap::unique_fd();
    done += static_cast<std::size_t>(n);
  }
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) return hotswap::unique_fd();
  return fd;
}

/// Appends what `fd` holds now without blocking; false at its end (EOF).
inline bool read_available(int fd, std::string& into) {
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return true;
    char buf[512];
    const ssize_t got = ::read(fd, buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    if (into.size() < 4096) into.append(buf, static_cast<std::size_t>(got));
  }
}

/// Throws module_error(preflight_failed) unless the candidate passes in a child process.
inline void run_preflight(const plugin_file& file, const std::vector<checked_dependency>& deps,
                          const preflight_expectation& expected, const preflight_options& options) {
  auto refuse = [&](const std::string& cause) {
    return module_error(module_errc::preflight_failed, file.path, "preflight failed: " + cause);
  };
  auto sys_fail = [&](const char* what) { return refuse(std::string(what) + ": " + std::strerror(errno)); };
  std::string tried;
  const std::filesystem::path helper = detail::find_preflight_helper(options.helper, tried);
  if (helper.empty())
    throw refuse("the helper program is not available (looked for " + tried +
                 "; set preflight_options::helper)");

  hotswap::unique_fd image = detail::sealed_memfd(file);
  if (!image) throw sys_fail("memfd");
  std::vector<hotswap::unique_fd> dep_images;
  for (const checked_dependency& d : deps) {
    dep_images.push_back(detail::sealed_memfd(d.file));
    if (!dep_images.back()) throw sys_fail("memfd");
  }
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw sys_fail("pipe");
  hotswap::unique_fd report_read(fds[0]), report_write(fds[1]);

  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_adddup2(&actions, image.get(), 3);  // dup2 clears FD_CLOEXEC on the copy
  ::posix_spawn_file_actions_adddup2(&actions, report_write.get(), 4);
  const interface_id& iface = expected.interface;
  const std::string version = std::to_string(iface.version), table = std::to_string(iface.table_size);
  std::vector<std::string> args = {helper.string(), iface.name, version, table, expected.module_name,
                                   expected.build_version, options.run_hooks ? "hooks" : "load"};
  for (std::size_t i = 0; i < dep_images.size(); ++i) {  // dependencies at fd 5, 6, ...: loaded first
    ::posix_spawn_file_actions_adddup2(&actions, dep_images[i].get(), static_cast<int>(5 + i));
    args.push_back(std::to_string(5 + i));
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  char* envp[] = {nullptr};  // no LD_PRELOAD or LD_LIBRARY_PATH of ours in the child
  pid_t pid = -1;
  posix_spawnattr_t attributes;  // a process group of its own: what it leaves behind can be ended with it
  ::posix_spawnattr_init(&attributes);
  ::posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP);
  ::posix_spawnattr_setpgroup(&attributes, 0);
  const int rc = ::posix_spawn(&pid, helper.c_str(), &actions, &attributes, argv.data(), envp);
  ::posix_spawnattr_destroy(&attributes);
  ::posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    errno = rc;
    throw sys_fail("posix_spawn");
  }
  report_write.reset();  // the child (and whatever it starts) holds the only write ends
  // Readable once the child has exited, whoever still holds the report pipe.
  hotswap::unique_fd exited(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));

  std::string report;
  const auto until = std::chrono::steady_clock::now() + options.deadline;
  bool timed_out = false, pipe_open = true;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p[2] = {{exited.get(), POLLIN, 0}, {pipe_open ? report_read.get() : -1, POLLIN, 0}};
    const int n = ::poll(p, 2, static_cast<int>(left.count()) + 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;  // the deadline check above decides
    if (p[1].revents != 0) pipe_open = detail::read_available(report_read.get(), report);
    if (p[0].revents != 0 || (!pipe_open && !exited)) break;  // the child is gone (without pidfd: EOF says so)
  }
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (pipe_open) pipe_open = detail::read_available(report_read.get(), report);
  ::kill(-pid, SIGKILL);  // whatever is left in its process group (the child itself is reaped)
  detail::child_report seen;
  seen.parse(report);
  if (timed_out)
    throw refuse("the test process did not finish within " +
                 std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(options.deadline).count()) +
                 " ms (last stage entered: " + seen.stage + "); killed");
  if (seen.verdict.starts_with("refused ")) throw refuse(seen.verdict.substr(8));
  if (seen.verdict == "ok" && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    if (!pipe_open) return;
    throw refuse("the test process reported ok and exited, but a process it started still holds its report pipe");
  }
  throw refuse(detail::describe_status(status, seen));
}

}  // namespace hotswap::modules::detail
