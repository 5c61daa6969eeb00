// Plugin hooks run on another thread, with a deadline.
//
// startup, migrate, self_test and shutdown are the plugin's code: they may
// hang (a lock, a network call without a timeout) or throw through the C ABI.
// The caller waits at most `deadline`; a hook that has not returned by then is
// left running on its detached thread and reported as timed out, and its
// version is never unloaded (a thread is still inside its code). An exception
// that crosses the ABI is caught on that thread and reported, never rethrown
// into the host. The calling thread (a swapping thread, an unload worker) is
// the only one that waits: callers of other modules, their swaps and the
// domain's reclaimer never do.
//
// Which thread: a plugin that may leave work for the exit of a thread it ran
// on (a thread_local destructor, a pthread key destructor: elf_check.hpp's
// thread_exit_imports) gets a dedicated thread that exits right after the hook,
// so that work is done before its library is closed (glibc would otherwise
// keep the library mapped for as long as that thread lives). Any other
// plugin's hooks run on reused threads (spare_threads.hpp): it has no way to
// leave such work, and a swap then makes no thread at all.
//
//   hook_outcome o = run_hook([fn, state](hotswap_plugin_error* e, void**) { return fn(state, e); }, 10s,
//                             hook_thread::reused);
//   if (o.kind == hook_outcome::timed_out) ...
#pragma once

#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include <hotswap/thread_name.hpp>
#include <hotswap/module/plugin.h>

#include "spare_threads.hpp"

namespace hotswap::modules::detail {

struct hook_outcome {
  enum kind_t { returned, threw, timed_out } kind = returned;
  int rc = 0;                    ///< returned: the hook's code
  hotswap_plugin_error error{};  ///< returned non-zero: what the plugin wrote
  void* state = nullptr;         ///< startup's new state
  std::string what;              ///< threw: the exception's text
};

/// Where a hook runs: a thread that exits after it, or a reused one.
enum class hook_thread { dedicated, reused };

/// `call(hotswap_plugin_error*, void** state)` must own everything it uses (it
/// may outlive this call) and be copyable. Throws std::system_error if no
/// thread can be made.
template <class Call>
hook_outcome run_hook(Call call, std::chrono::nanoseconds deadline, hook_thread where = hook_thread::dedicated) {
  struct shared {
    std::mutex mutex;
    std::condition_variable done_cv;
    bool done = false;
    hook_outcome outcome;
  };
  auto st = std::make_shared<shared>();
  auto body = [st, call = std::move(call)]() mutable {
    hook_outcome o;
    try {
      o.rc = call(&o.error, &o.state);
    } catch (const std::exception& e) {  // an exception that crossed the plugin ABI
      o.kind = hook_outcome::threw;
      o.what = e.what();
    } catch (...) {
      o.kind = hook_outcome::threw;
      o.what = "an exception of unknown type";
    }
    o.error.message[HOTSWAP_PLUGIN_MESSAGE_MAX - 1] = '\0';
    std::lock_guard lock(st->mutex);
    st->outcome = std::move(o);
    st->done = true;
    st->done_cv.notify_all();
  };
  std::thread worker;
  if (where == hook_thread::reused) spare_threads::instance().run(std::move(body));
  else worker = std::thread([body = std::move(body)]() mutable {
    hotswap::name_this_thread("hs-hook");
    body();
  });
  std::unique_lock lock(st->mutex);
  if (!st->done_cv.wait_for(lock, deadline, [&] { return st->done; })) {
    lock.unlock();
    if (worker.joinable()) worker.detach();  // still inside the plugin: it keeps `st` and `call` alive
    hook_outcome o;
    o.kind = hook_outcome::timed_out;
    return o;
  }
  hook_outcome out = std::move(st->outcome);
  lock.unlock();
  if (worker.joinable()) worker.join();  // its exit ran what the plugin left for it
  return out;
}

}  // namespace hotswap::modules::detail
