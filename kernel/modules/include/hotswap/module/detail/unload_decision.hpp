// Whether a version's code leaves the process, decided by trying, in order:
//
//   shutdown(state)  ->  its keepalives gone (by the drain deadline)
//                    ->  declared unload-safe?  ->  dlclose  ->  dlopen(path, RTLD_NOLOAD) says "gone"
//
// The verdict is one of three. `unloaded`: every step passed (or nothing was
// ever mapped). `retained`: a step before the probe said no (a hook hung or
// threw, keepalives still held, not declared HOTSWAP_PLUGIN_UNLOAD_SAFE,
// dlclose did not return), so the code stays mapped on purpose.
// `quarantined`: dlclose returned but the library is still mapped (GNU
// unique symbols, -z nodelete, a thread_local destructor owed): its name is
// never reused. `cause` says why, for the event. What follows from the
// verdict (files, dependencies, counters, the event) is the image's
// (module_image.hpp). shutdown and dlclose (which runs the plugin's
// destructors) run on a dedicated thread that has exited before the probe
// when the plugin could leave work for a thread's exit, else on a reused one
// (hook_runner.hpp): either way no thread owes the plugin a thread_local
// destructor when the probe asks whether it left.
#pragma once

#include <dlfcn.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "../plugin.h"
#include "../record.hpp"
#include "dl_state.hpp"
#include "hook_runner.hpp"
#include "loader_context.hpp"

namespace hotswap::modules::detail {

enum class unload_verdict { unloaded, retained, quarantined };

struct unload_decision {
  unload_verdict verdict = unload_verdict::unloaded;
  std::string cause;  ///< why the code stays mapped; empty when unloaded
};

/// A version as its unload sees it.
struct unload_subject {
  const hotswap_plugin_descriptor* descriptor = nullptr;
  void* state = nullptr;
  bool started = false;      ///< startup returned normally: shutdown is owed
  bool hung = false;         ///< a hook never returned: a thread is still in its code
  bool unload_safe = false;  ///< declared HOTSWAP_PLUGIN_UNLOAD_SAFE
  void* handle = nullptr;    ///< nullptr: nothing was mapped
  std::string load_path;
  version_record* record = nullptr;  ///< nullptr: refused before it had one
  hook_thread hooks = hook_thread::dedicated;  ///< where shutdown and dlclose run (hook_runner.hpp)
};

inline std::string dl_error_text() {
  const char* e = ::dlerror();
  return e != nullptr ? e : "unknown error";
}

inline std::string in_ms(std::chrono::nanoseconds d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + " ms";
}

/// Runs the steps above. `stuck(message)` reports a hook that did not return
/// by the hook deadline (the caller logs it); hook counters go to `ctx`.
template <class Stuck>
unload_decision decide_unload(const unload_subject& v, loader_context& ctx, Stuck&& stuck) noexcept {
  const auto retained = [](std::string cause) { return unload_decision{unload_verdict::retained, std::move(cause)}; };
  const std::chrono::nanoseconds deadline = ctx.options.hook_deadline;
  if (v.hung) return retained("a hook never returned");
  if (v.started) {
    try {
      const hook_outcome o = run_hook([fn = v.descriptor->shutdown, state = v.state](hotswap_plugin_error*, void**) {
        fn(state);
        return 0;
      }, deadline, v.hooks);
      if (o.kind == hook_outcome::timed_out) {
        ctx.hook_timeouts.fetch_add(1, std::memory_order_relaxed);  // a statistic: no partner
        std::string cause = "shutdown did not return within " + in_ms(deadline);
        stuck("hook timeout: " + cause + "; the version stays mapped for good");
        return retained(std::move(cause));
      }
      if (o.kind == hook_outcome::threw) {
        ctx.hook_exceptions.fetch_add(1, std::memory_order_relaxed);  // a statistic: no partner
        return retained("shutdown threw (an exception crossed the plugin ABI: " + o.what + ")");
      }
    } catch (...) {  // no thread for the hook: shutdown never ran
      return retained("no thread to run shutdown on");
    }
  }
  // Keepalives the plugin still holds get until the drain deadline (after shutdown) to go.
  if (v.record != nullptr) {
    const auto until = std::chrono::steady_clock::now() + ctx.options.drain_deadline;
    while (v.record->holds() > 0 && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (v.record->holds() > 0) return retained("keepalives still held after shutdown");
  }
  if (v.handle == nullptr) return {};  // nothing was ever mapped
  if (!v.unload_safe) return retained("not declared unload-safe (HOTSWAP_PLUGIN_UNLOAD_SAFE)");
  // On a hook thread: dlclose, then probe by the same name (a handle back: still mapped).
  struct closed_state {
    bool still_mapped = false;
    std::string problem;
  };
  auto closed = std::make_shared<closed_state>();
  try {
    const hook_outcome o = run_hook([h = v.handle, path = v.load_path, closed](hotswap_plugin_error*, void**) {
      dl_lock lock;
      if (::dlclose(h) != 0) closed->problem = "dlclose failed: " + dl_error_text() + "; ";
      if (void* again = ::dlopen(path.c_str(), RTLD_NOLOAD | RTLD_LAZY); again != nullptr) {
        ::dlclose(again);
        closed->still_mapped = true;
        closed->problem += "still mapped after dlclose (GNU unique symbol, nodelete, or a thread_local destructor owed)";
      }
      return 0;
    }, deadline, v.hooks);
    if (o.kind == hook_outcome::timed_out) {
      std::string cause = "dlclose (the plugin's destructors) did not return within " + in_ms(deadline);
      stuck("hook timeout: " + cause);
      return retained(std::move(cause));
    }
  } catch (...) {
    return retained("no thread to run dlclose on");
  }
  if (closed->still_mapped) return {unload_verdict::quarantined, closed->problem};
  return {};
}

}  // namespace hotswap::modules::detail
