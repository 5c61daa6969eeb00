// Names the threads the library starts, as `top -H`, `ps -L`, gdb and perf
// show them: "hs-reclaim" (a domain's reclaimer), "hs-spare" (reused threads
// for plugin hooks and unloads), "hs-hook" (a plugin's dedicated hook
// thread), "hs-watch" (a file watcher). An operator can then tell which part
// of the library a busy or stuck thread belongs to. Hosts name theirs the
// same way (hotswap-httpd's are httpd-*). Linux keeps 15 bytes.
#pragma once

#include <pthread.h>

namespace hotswap {

inline void name_this_thread(const char* name) noexcept {
  ::pthread_setname_np(::pthread_self(), name);  // a name too long is refused (ERANGE) and changes nothing
}

}  // namespace hotswap
