// hotswap-preflight: loads one plugin candidate in a process of its own and
// reports whether it survived (see <hotswap/module/detail/preflight.hpp>).
//
//   hotswap-preflight <interface name> <interface version> <table size>
//                     <note's module name> <note's build> hooks|load [dependency fd]...
//   fd 3: the candidate's bytes (a sealed memfd); fd 4: the report pipe; then
//   its checked dependencies' memfds, loaded first (ld.so binds them by SONAME).
//   Report, one line each: "at <stage>" as each stage begins, "signal <what
//   was seen>" if a fatal signal arrives, then "ok" or "refused <cause>".
//
// It is a child subreaper: a process the candidate starts (a daemon forked
// and re-parented included) stays its child, so it can be seen, named and
// killed before the verdict.
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <hotswap/module/detail/descriptor_check.hpp>
#include <hotswap/module/detail/elf_check.hpp>
#include <hotswap/module/detail/global_scope.hpp>
#include <hotswap/module/plugin.h>

namespace {

constexpr int image_fd = 3, report_fd = 4;

void write_all(const char* data, std::size_t size) {
  for (std::size_t done = 0; done < size;) {
    const ssize_t n = ::write(report_fd, data + done, size - done);
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

void report(const std::string& line) {
  const std::string out = line + "\n";
  write_all(out.data(), out.size());
}

std::string kill_leftovers();

/// Every refusal also names (and ends) the processes the candidate left running.
int refuse(const std::string& cause) {
  std::string flat = cause;
  if (const std::string left = kill_leftovers(); !left.empty())
    flat += "; processes it started were still running: " + left + " (killed)";
  for (char& c : flat)
    if (c == '\n' || c == '\r') c = ' ';
  report("refused " + flat);
  return 0;
}

// ---- what a fatal signal was: async-signal-safe -------------------------------

char* append(char* at, const char* text) {
  while (*text != '\0') *at++ = *text++;
  return at;
}
char* append_number(char* at, long v) {
  char digits[24];
  int n = 0;
  unsigned long u = v < 0 ? 0UL - static_cast<unsigned long>(v) : static_cast<unsigned long>(v);
  do digits[n++] = static_cast<char>('0' + u % 10); while ((u /= 10) != 0);
  if (v < 0) *at++ = '-';
  while (n > 0) *at++ = digits[--n];
  return at;
}

void observe_signal(int sig, siginfo_t* info, void*) {
  char line[160];
  char* at = append(line, "signal ");
  if (info->si_code > 0) {
    at = append(at, "raised by the kernel (a fault, si_code ");
    at = append_number(at, info->si_code);
    at = append(at, ")");
  } else if (info->si_pid == ::getpid()) {
    at = append(at, "raised by the test process itself (kill/raise)");
  } else {
    at = append(at, "sent by process ");
    at = append_number(at, info->si_pid);
    at = append(at, " (not the test process)");
  }
  *at++ = '\n';
  write_all(line, static_cast<std::size_t>(at - line));
  ::raise(sig);  // SA_RESETHAND: the default action now ends the process with this signal
}

void observe_fatal_signals() {
  struct sigaction sa{};
  sa.sa_sigaction = &observe_signal;
  sa.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_NODEFER;
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE})
    ::sigaction(sig, &sa, nullptr);
}

// ---- processes the candidate left behind ----------------------------------------

struct process {
  pid_t pid;
  std::string name;
};

/// The text of /proc/<pid>/stat; "" when it cannot be read, as when the process
/// was reaped between readdir and read (ESRCH). Plain read(2): an ifstream's
/// istreambuf_iterator throws from basic_filebuf::underflow on that error.
std::string proc_stat(const char* pid) {
  const int fd = ::open((std::string("/proc/") + pid + "/stat").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::string text;
  char chunk[512];
  for (;;) {
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n > 0) {
      text.append(chunk, static_cast<std::size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      if (n < 0) text.clear();
      break;
    }
  }
  ::close(fd);
  return text;
}

/// Our children still running (zombies reaped first). Needs /proc.
std::vector<process> running_children() {
  while (::waitpid(-1, nullptr, WNOHANG) > 0) {
  }
  std::vector<process> out;
  const std::unique_ptr<DIR, int (*)(DIR*)> proc(::opendir("/proc"), &::closedir);
  if (proc == nullptr) return out;
  while (const dirent* e = ::readdir(proc.get())) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    const std::string text = proc_stat(e->d_name);
    const auto open = text.find('('), close = text.rfind(')');
    if (open == std::string::npos || close == std::string::npos || close + 4 >= text.size()) continue;
    const char state = text[close + 2];
    if (std::strtol(text.c_str() + close + 4, nullptr, 10) == ::getpid() && state != 'Z')
      out.push_back({static_cast<pid_t>(std::atol(e->d_name)), text.substr(open + 1, close - open - 1)});
  }
  return out;
}

/// Names and kills every process the candidate started that still runs; "" if none.
std::string kill_leftovers() {
  std::string seen;
  for (int round = 0; round < 16; ++round) {  // a killed child's own children come back to us
    const std::vector<process> left = running_children();
    if (left.empty()) break;
    for (const process& p : left) {
      seen += (seen.empty() ? "pid " : ", pid ") + std::to_string(p.pid) + " '" + p.name + "'";
      ::kill(p.pid, SIGKILL);
      ::waitpid(p.pid, nullptr, 0);
    }
  }
  return seen;
}

// ---- the global scope ---------------------------------------------------------------

/// The names the object in `fd` exports (from its ELF bytes, checked by the host already).
std::vector<std::string> exported_by(int fd) {
  struct stat st{};
  if (::fstat(fd, &st) != 0 || st.st_size <= 0) return {};
  std::vector<std::byte> bytes(static_cast<std::size_t>(st.st_size));
  if (::pread(fd, bytes.data(), bytes.size(), 0) != st.st_size) return {};
  hotswap::modules::detail::elf_facts facts;
  const hotswap::modules::elf_limits any{UINT32_MAX, UINT32_MAX, UINT64_MAX};  // the host applied its limits
  if (hotswap::modules::detail::check_elf(bytes, &facts, any)) return {};
  return facts.exported;
}

// ---- the stub host ----------------------------------------------------------------------

int keepalive_acquire(void*) { return 1; }
void keepalive_release(void*) {}
void host_log(void*, int, const char*) {}

int hook_failure(const char* what, int rc, const hotswap_plugin_error& e) {
  return refuse(std::string(what) + ": [" + std::to_string(e.code != 0 ? e.code : rc) + "] " +
                (e.message[0] != '\0' ? std::string(e.message, ::strnlen(e.message, sizeof e.message)) : "no message"));
}

int run(int argc, char** argv) {
  if (argc < 7)
    return refuse("usage: hotswap-preflight <interface> <version> <table size> <module> <build> hooks|load [fd]...");
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  observe_fatal_signals();
  const hotswap::modules::interface_id expected{argv[1], static_cast<std::uint32_t>(std::strtoul(argv[2], nullptr, 10)),
                                                static_cast<std::size_t>(std::strtoull(argv[3], nullptr, 10))};
  const bool hooks = std::strcmp(argv[6], "hooks") == 0;
  std::vector<std::pair<int, void*>> loaded;  // (fd, handle): what the global-scope check looks at
  report("at loading its dependencies");
  for (int i = 7; i < argc; ++i) {
    void* dep = ::dlopen((std::string("/proc/self/fd/") + argv[i]).c_str(), RTLD_NOW | RTLD_LOCAL);
    if (dep == nullptr) {
      const char* e = ::dlerror();
      return refuse(std::string("dependency refused: dlopen failed: ") + (e != nullptr ? e : "unknown error"));
    }
    loaded.emplace_back(std::atoi(argv[i]), dep);
  }
  report("at dlopen (its constructors)");
  void* handle = ::dlopen(("/proc/self/fd/" + std::to_string(image_fd)).c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* e = ::dlerror();
    return refuse(std::string("dlopen failed: ") + (e != nullptr ? e : "unknown error"));
  }
  loaded.emplace_back(image_fd, handle);
  report("at its entry point");
  void* entry = ::dlsym(handle, HOTSWAP_PLUGIN_ENTRY_SYMBOL);
  if (entry == nullptr) return refuse("no descriptor: " HOTSWAP_PLUGIN_ENTRY_SYMBOL "() is not exported");
  const hotswap_plugin_descriptor* d = reinterpret_cast<hotswap_plugin_entry_fn>(entry)();
  if (auto problem = hotswap::modules::detail::check_descriptor(d, expected)) return refuse(problem->cause);
  if (auto problem = hotswap::modules::detail::check_descriptor_matches_note(*d, argv[4], argv[5])) return refuse(problem->cause);
  if (hooks) {
    hotswap_host_api host{sizeof(hotswap_host_api), nullptr, &keepalive_acquire, &keepalive_release, &host_log};
    void* state = nullptr;
    hotswap_plugin_error err{};
    report("at startup");
    if (int rc = d->startup(&host, &state, &err); rc != 0) return hook_failure("startup failed", rc, err);
    if (d->self_test != nullptr) {
      report("at self_test");
      if (int rc = d->self_test(state, &err); rc != 0) {
        d->shutdown(state);
        return hook_failure("self test failed", rc, err);
      }
    }
    report("at shutdown");
    d->shutdown(state);
  }
  report("at the checks after loading");
  for (const auto& [fd, h] : loaded)
    if (auto name = hotswap::modules::detail::interposed_symbol(h, exported_by(fd)))
      return refuse("promoted to global scope: a global lookup of '" + *name + "' resolves into the " +
                    (h == handle ? std::string("candidate") : "dependency at fd " + std::to_string(fd)) +
                    ", which was opened RTLD_LOCAL");
  if (const std::string left = kill_leftovers(); !left.empty())
    return refuse("the candidate started processes that were still running after " +
                  std::string(hooks ? "its hooks" : "its constructors") + ": " + left +
                  " (killed; in the host they would be the host's children)");
  report("ok");
  // No dlclose: the process ends here; a plugin that left a thread behind
  // would otherwise crash it after the verdict, for nothing.
  std::fflush(nullptr);
  ::_exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    return refuse(std::string("an exception crossed the plugin ABI: ") + e.what());
  } catch (...) {
    return refuse("an exception of unknown type crossed the plugin ABI");
  }
}
