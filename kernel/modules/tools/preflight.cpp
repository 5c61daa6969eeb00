// hotswap-preflight: loads one plugin candidate in a process of its own and
// reports whether it survived (see <hotswap/module/detail/preflight.hpp>).
//
//   hotswap-preflight <interface name> <interface version> <table size> hooks|load [dependency fd]...
//   fd 3: the candidate's bytes (a sealed memfd); fd 4: the report pipe; then
//   its checked dependencies' memfds, loaded first (ld.so binds them by SONAME).
//   Report: "ok\n", or "refused <cause>\n". A crash, exit() or hang says the rest.
#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <hotswap/module/detail/descriptor_check.hpp>
#include <hotswap/module/plugin.h>

namespace {

constexpr int image_fd = 3, report_fd = 4;

void report(const std::string& line) {
  const std::string out = line + "\n";
  for (std::size_t done = 0; done < out.size();) {
    const ssize_t n = ::write(report_fd, out.data() + done, out.size() - done);
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

int refuse(const std::string& cause) {
  std::string flat = cause;
  for (char& c : flat)
    if (c == '\n' || c == '\r') c = ' ';
  report("refused " + flat);
  return 0;
}

int keepalive_acquire(void*) { return 1; }
void keepalive_release(void*) {}
void host_log(void*, int, const char*) {}

int hook_failure(const char* what, int rc, const hotswap_plugin_error& e) {
  return refuse(std::string(what) + ": [" + std::to_string(e.code != 0 ? e.code : rc) + "] " +
                (e.message[0] != '\0' ? std::string(e.message, ::strnlen(e.message, sizeof e.message)) : "no message"));
}

int run(int argc, char** argv) {
  if (argc < 5) return refuse("usage: hotswap-preflight <interface> <version> <table size> hooks|load [fd]...");
  const hotswap::modules::interface_id expected{argv[1], static_cast<std::uint32_t>(std::strtoul(argv[2], nullptr, 10)),
                                       static_cast<std::size_t>(std::strtoull(argv[3], nullptr, 10))};
  const bool hooks = std::strcmp(argv[4], "hooks") == 0;
  for (int i = 5; i < argc; ++i)
    if (::dlopen((std::string("/proc/self/fd/") + argv[i]).c_str(), RTLD_NOW | RTLD_LOCAL) == nullptr) {
      const char* e = ::dlerror();
      return refuse(std::string("dependency refused: dlopen failed: ") + (e != nullptr ? e : "unknown error"));
    }
  void* handle = ::dlopen(("/proc/self/fd/" + std::to_string(image_fd)).c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* e = ::dlerror();
    return refuse(std::string("dlopen failed: ") + (e != nullptr ? e : "unknown error"));
  }
  void* entry = ::dlsym(handle, HOTSWAP_PLUGIN_ENTRY_SYMBOL);
  if (entry == nullptr) return refuse("no descriptor: " HOTSWAP_PLUGIN_ENTRY_SYMBOL "() is not exported");
  const hotswap_plugin_descriptor* d = reinterpret_cast<hotswap_plugin_entry_fn>(entry)();
  if (auto problem = hotswap::modules::check_descriptor(d, expected)) return refuse(problem->cause);
  if (hooks) {
    hotswap_host_api host{sizeof(hotswap_host_api), nullptr, &keepalive_acquire, &keepalive_release, &host_log};
    void* state = nullptr;
    hotswap_plugin_error err{};
    if (int rc = d->startup(&host, &state, &err); rc != 0) return hook_failure("startup failed", rc, err);
    if (d->self_test != nullptr)
      if (int rc = d->self_test(state, &err); rc != 0) {
        d->shutdown(state);
        return hook_failure("self test failed", rc, err);
      }
    d->shutdown(state);
  }
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
