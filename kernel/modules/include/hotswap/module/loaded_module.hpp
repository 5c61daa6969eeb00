// One loaded version of a plugin, owned: its shadow copy, dlopen handle,
// descriptor and state.
//
// Opening checks everything before any plugin code runs, on the bytes that
// were read once (source.hpp): the ELF structure (elf_check.hpp), the
// metadata note and seal (metadata_check.hpp), the dependencies
// (dependency_check.hpp), the retained-version limit and, when the request
// asks for it, a preflight in a child process (preflight.hpp) unless the
// loader remembers that these bytes passed it (preflight_memo.hpp). Only then:
// shadow copy, dependencies from their checked bytes, dlopen, descriptor.
// Each stage's time is kept (swap_timing.hpp).
//
// Every hook runs on a thread of its own with a deadline (hook_runner.hpp);
// an exception that crosses the ABI is reported, never rethrown into the host.
//
// Destroying a version unloads it, in this order:
//
//   shutdown(state)  ->  dlclose  ->  dlopen(path, RTLD_NOLOAD) must say "gone"
//                    ->  remove the shadow copy
//
// but dlclose only for a plugin whose metadata declares it unload-safe and
// whose hooks all returned normally. Otherwise the code stays mapped:
// "retained", reported (module_event_kind::retained) and counted against
// loader_options::max_retained. The NOLOAD probe matters: dlclose is allowed
// to keep a library mapped (GNU unique symbols, a thread_local with a
// destructor still owed, -z nodelete); such a version is reported
// (stayed_mapped) and quarantined, its name never reused.
//
// A loaded_module is the T of a hotswap::slot (module_slot.hpp), so the
// kernel's rule decides when its destructor runs: on the domain's reclaimer,
// after the version's grace period, its last pin and its last keepalive. A
// published version's unload is then handed to a worker thread of its own, so
// a plugin whose shutdown hangs delays nobody else; wait_for_unloads() waits
// for them (the registry's destructor does).
//
//   module_loader loader(options);
//   loaded_module m = loader.open(loader.read("calc.so"), interface_of<calc_api>(), "calc");
//   m.start();                    // the plugin's startup; throws module_error
//   m.api<calc_api>().add(1, 2);
#pragma once

#include <dlfcn.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "audit.hpp"
#include "detail/dependency_check.hpp"
#include "detail/descriptor_check.hpp"
#include "detail/elf_check.hpp"
#include "error.hpp"
#include "detail/hook_runner.hpp"
#include "detail/metadata_check.hpp"
#include "plugin.h"
#include "detail/preflight.hpp"
#include "detail/preflight_memo.hpp"
#include "record.hpp"
#include "detail/shadow.hpp"
#include "detail/source.hpp"
#include "swap_timing.hpp"

namespace hotswap::modules {

/// The interface a host expects: name and version must match the plugin's,
/// and the plugin's table must be at least `table_size` bytes.
template <class Interface>
interface_id interface_of() {
  return {interface_traits<Interface>::name, interface_traits<Interface>::version, sizeof(Interface)};
}

struct loader_options {
  shadow_options shadow;
  /// policy.allowed_dir is made absolute when the loader is built (a later
  /// chdir changes nothing).
  source_policy policy;
  /// A replaced version still loaded this long after it was replaced is
  /// reported stuck (once). It keeps draining; nothing is forced.
  std::chrono::nanoseconds drain_deadline = std::chrono::seconds(10);
  /// Each of startup, migrate, self_test, shutdown and dlclose: a hook still
  /// running after this is reported, its version refused (or retained for good).
  std::chrono::nanoseconds hook_deadline = std::chrono::seconds(10);
  /// Versions whose code stays mapped (retained or quarantined) before new
  /// loads are refused (retained_limit): each costs address space for good.
  std::size_t max_retained = 64;
  /// How the preflight runs; whether a load runs it is per request.
  preflight_options preflight;
  /// Cap on an event's message (other text fields: a quarter of it, at least 256).
  std::size_t max_event_bytes = 4096;
  module_log log;   ///< unload, retained, stayed_mapped, stuck and plugin_log events
  trace_fn trace;   ///< steps of each load, for tracing and tests
};

/// Per load: what a request asks for beyond the loader's options.
struct load_request {
  /// Load the candidate in a child process first (preflight.hpp).
  bool preflight = false;
};

/// Counters of a loader, over every version it loaded. Approximate while they change.
struct loader_stats {
  std::uint64_t loaded = 0;
  std::uint64_t unloaded = 0;
  std::uint64_t quarantined = 0;
  std::uint64_t drain_ns_total = 0;  ///< retired -> unloaded, summed over published versions
  std::uint64_t drain_ns_max = 0;
  std::uint64_t retained = 0;        ///< code kept mapped on purpose (not unload-safe, hook failure)
  std::uint64_t hook_timeouts = 0;   ///< hooks that did not return by the hook deadline
  std::uint64_t hook_exceptions = 0; ///< exceptions that crossed the plugin ABI
  std::uint64_t sink_failures = 0;   ///< log sink calls that threw
  std::uint64_t preflights = 0;             ///< child processes run (passed or not)
  std::uint64_t preflights_remembered = 0;  ///< preflights skipped: the bytes had passed before
};

/// Waits until every unload handed to a worker so far has finished. False on timeout.
inline bool wait_for_unloads(std::chrono::nanoseconds timeout);

namespace detail {

/// Held around dlopen and around dlclose + the NOLOAD probe. glibc already
/// serialises them on its own lock; ours makes that order visible to
/// ThreadSanitizer, which sees neither ld.so's lock nor its munmap/mmap, and
/// would otherwise report a new library's statics as racing with those of the
/// unloaded library that had the same addresses.
inline std::mutex& dl_mutex() {
  static std::mutex m;
  return m;
}

/// Unloads running on workers, process-wide: what wait_for_unloads() waits for.
class unload_tracker {
 public:
  static unload_tracker& instance() {
    static unload_tracker t;
    return t;
  }
  void begin() {
    std::lock_guard lock(mutex_);
    ++pending_;
  }
  void end() {
    std::lock_guard lock(mutex_);
    if (--pending_ == 0) idle_.notify_all();
  }
  bool wait(std::chrono::nanoseconds timeout) {
    std::unique_lock lock(mutex_);
    return idle_.wait_for(lock, timeout, [&] { return pending_ == 0; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable idle_;
  std::size_t pending_ = 0;
};

inline loader_options normalized(loader_options o) {
  if (!o.policy.allowed_dir.empty()) o.policy.allowed_dir = std::filesystem::absolute(o.policy.allowed_dir).lexically_normal();
  return o;
}

struct loader_context {
  explicit loader_context(loader_options o)
      : options(normalized(std::move(o))),
        store(options.shadow),
        dependency_store({shadow_mode::memory, {}, false}),
        preflight_passes(options.preflight.remembered_passes) {}
  /// Never throws: a sink's failure is counted, and the event is dropped.
  void emit(const module_event& e) const noexcept {
    if (!options.log) return;
    try {
      options.log(sanitized(e, options.max_event_bytes));
    } catch (...) {
      sink_failures.fetch_add(1, std::memory_order_relaxed);  // a statistic: no partner
    }
  }
  void step(std::string_view stage, const std::filesystem::path& p) const {
    if (options.trace) options.trace(stage, p);
  }

  const loader_options options;
  shadow_store store;
  shadow_store dependency_store;  // checked dependencies: always memfds
  preflight_memo preflight_passes;
  // Statistics and the retained count (relaxed everywhere): they order nothing.
  std::atomic<std::uint64_t> loaded{0}, unloaded{0}, quarantined{0}, drain_ns_total{0}, drain_ns_max{0}, retained{0},
      hook_timeouts{0}, hook_exceptions{0}, preflights{0}, preflights_remembered{0};
  mutable std::atomic<std::uint64_t> sink_failures{0};
};

/// What a plugin's hotswap_host_api points at. Separate from the image so
/// that a version quarantined with keepalives still out can keep it forever.
struct host_link {
  hotswap_host_api api{};
  std::shared_ptr<loader_context> ctx;
  std::shared_ptr<version_record> record;
};

/// Host links of versions whose code stays mapped: that code may still call
/// the host API, so they live (reachably) for the rest of the process.
inline void keep_forever(std::unique_ptr<host_link> link) {
  static std::mutex mutex;
  static std::vector<std::unique_ptr<host_link>> kept;
  std::lock_guard lock(mutex);
  kept.push_back(std::move(link));
}

class module_image {
 public:
  module_image(std::shared_ptr<loader_context> ctx, const plugin_file& file, std::string module)
      : ctx_(std::move(ctx)), file_(file.path), link_(std::make_unique<host_link>()) {
    id_.module = std::move(module);
    id_.file = file.path.string();
    id_.sha256 = file.sha256;
    link_->api = {sizeof(hotswap_host_api), link_.get(), &host_keepalive_acquire, &host_keepalive_release, &host_log};
    link_->ctx = ctx_;
  }
  module_image(const module_image&) = delete;
  module_image& operator=(const module_image&) = delete;

  /// Every check, then shadow copy, dlopen, descriptor checks. On a throw the
  /// destructor undoes whatever was done.
  void open(const plugin_file& file, const interface_id& expected, const load_request& request) {
    detail::stage_clock clock;
    ctx_->step("check", file.path);
    elf_facts facts;
    if (auto problem = check_elf(file.view(), &facts)) fail(problem->code, problem->cause);
    auto metadata = read_metadata(file.view(), facts);
    if (auto* problem = std::get_if<load_problem>(&metadata)) fail(problem->code, problem->cause);
    const hotswap_plugin_metadata& md = std::get<hotswap_plugin_metadata>(metadata);
    if (auto problem = check_metadata(md, file.view(), facts, expected, ctx_->options.policy.require_seal))
      fail(problem->code, problem->cause);
    unload_safe_ = (md.flags & HOTSWAP_PLUGIN_UNLOAD_SAFE) != 0;
    const std::vector<checked_dependency> deps = check_dependencies(file, facts, ctx_->options.policy);
    // Relaxed: a count compared against a limit; nothing is published through it.
    const std::uint64_t kept = ctx_->retained.load(std::memory_order_relaxed) + ctx_->quarantined.load(std::memory_order_relaxed);
    if (kept >= ctx_->options.max_retained)
      fail(module_errc::retained_limit, "retained limit: " + std::to_string(kept) +
                                            " versions already stay mapped (loader_options::max_retained)");
    clock.lap(timing_.check);
    if (request.preflight) preflight(file, deps, expected);
    clock.lap(timing_.preflight);
    ctx_->step("shadow", file.path);
    copy_ = ctx_->store.place(file);
    id_.load_path = copy_.load_path();
    clock.lap(timing_.shadow);
    ctx_->step("dlopen", file.path);
    {
      std::lock_guard lock(dl_mutex());
      for (const checked_dependency& d : deps) load_dependency(d);
      handle_ = ::dlopen(copy_.load_path().c_str(), RTLD_NOW | RTLD_LOCAL);
      if (handle_ == nullptr) fail(module_errc::load_failed, std::string("dlopen failed: ") + last_dl_error());
    }
    ctx_->loaded.fetch_add(1, std::memory_order_relaxed);  // a statistic: no partner, publishes nothing
    if (ctx_->store.options().mode == shadow_mode::in_place && file.fd && !unchanged_since_read(file))
      fail(module_errc::changed_while_loading,
           "changed while loading: the file was written between its checks and dlopen; what was loaded is not "
           "what was checked");
    void* entry = ::dlsym(handle_, HOTSWAP_PLUGIN_ENTRY_SYMBOL);
    if (entry == nullptr)
      fail(module_errc::no_descriptor, "no descriptor: the plugin does not export " HOTSWAP_PLUGIN_ENTRY_SYMBOL "()");
    desc_ = reinterpret_cast<hotswap_plugin_entry_fn>(entry)();
    if (auto problem = check_descriptor(desc_, expected)) fail(problem->code, problem->cause);
    if (std::string_view(desc_->module_name) != detail::note_text(md.module_name).value_or("") ||
        std::string_view(desc_->build_version) != detail::note_text(md.build_version).value_or(""))
      fail(module_errc::bad_descriptor, "bad descriptor: the descriptor says '" + std::string(desc_->module_name) + "' " +
                                            desc_->build_version + ", the metadata note says '" + md.module_name +
                                            "' " + md.build_version);
    id_.module_name = desc_->module_name;
    id_.build_version = desc_->build_version;
    id_.interface_version = desc_->interface_version;
    if (id_.module.empty()) id_.module = id_.module_name;
    record_ = std::make_shared<version_record>(id_);
    link_->record = record_;
    clock.lap(timing_.dlopen);
  }

  void start() {
    detail::stage_clock clock;
    ctx_->step("startup", file_);
    const hook_outcome o = hook(module_errc::startup_failed, "startup",
                                [fn = desc_->startup, api = &link_->api](hotswap_plugin_error* e, void** state) {
                                  return fn(api, state, e);
                                });
    state_ = o.state;
    started_ = o.kind == hook_outcome::returned && o.rc == 0;  // only a started version is shut down
    clock.lap(timing_.startup);
    report_failure(module_errc::startup_failed, "startup", o);
  }

  void migrate_from(const module_image& old) {
    if (desc_->migrate == nullptr) return;
    detail::stage_clock clock;
    ctx_->step("migrate", file_);
    auto from = std::make_shared<hotswap_migration>(
        hotswap_migration{old.state_, old.desc_->module_name, old.desc_->build_version, old.desc_->interface_version});
    const hook_outcome o = hook(module_errc::migrate_failed, "migrate",
                                [fn = desc_->migrate, state = state_, from](hotswap_plugin_error* e, void**) {
                                  return fn(state, from.get(), e);
                                });
    clock.lap(timing_.migrate);
    report_failure(module_errc::migrate_failed, "migrate", o);
  }

  void self_test() {
    if (desc_->self_test == nullptr) return;
    detail::stage_clock clock;
    ctx_->step("self_test", file_);
    const hook_outcome o =
        hook(module_errc::self_test_failed, "self test",
             [fn = desc_->self_test, state = state_](hotswap_plugin_error* e, void**) { return fn(state, e); });
    clock.lap(timing_.self_test);
    report_failure(module_errc::self_test_failed, "self test", o);
  }

  ~module_image() { unload(); }

  const hotswap_plugin_descriptor& descriptor() const noexcept { return *desc_; }
  void* state() const noexcept { return state_; }
  const std::shared_ptr<version_record>& record() const noexcept { return record_; }
  bool published() const { return record_ && record_->number() != 0; }
  /// The stages this version's load and hooks have taken so far.
  const swap_timing& timing() const noexcept { return timing_; }

 private:
  [[noreturn]] void fail(module_errc code, const std::string& cause) { throw module_error(code, file_, cause); }

  // The child process, unless these bytes passed it before under this loader.
  void preflight(const plugin_file& file, const std::vector<checked_dependency>& deps, const interface_id& expected) {
    const std::string key = preflight_memo::key_of(file, deps, expected);
    if (ctx_->preflight_passes.passed(key)) {
      ctx_->step("preflight_remembered", file.path);
      ctx_->preflights_remembered.fetch_add(1, std::memory_order_relaxed);  // a statistic: no partner
      timing_.preflight_remembered = true;
      return;
    }
    ctx_->step("preflight", file.path);
    ctx_->preflights.fetch_add(1, std::memory_order_relaxed);  // a statistic: no partner
    run_preflight(file, deps, expected, ctx_->options.preflight);
    ctx_->preflight_passes.remember(key);
  }

  static std::string last_dl_error() {
    const char* e = ::dlerror();
    return e != nullptr ? e : "unknown error";
  }

  // Under dl_mutex: the dependency's checked bytes, loaded first so that ld.so
  // binds the plugin's DT_NEEDED to them by SONAME.
  void load_dependency(const checked_dependency& d) {
    shadow_copy copy = ctx_->dependency_store.place(d.file);
    void* h = ::dlopen(copy.load_path().c_str(), RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr)
      fail(module_errc::dependency_refused, "dependency refused: '" + d.soname + "': dlopen failed: " + last_dl_error());
    dependencies_.push_back({h, std::move(copy)});
    void* by_name = ::dlopen(d.soname.c_str(), RTLD_NOLOAD | RTLD_LAZY);
    if (by_name != nullptr) ::dlclose(by_name);
    if (by_name != h)
      fail(module_errc::dependency_refused, "dependency refused: '" + d.soname +
                                                "': another library with this SONAME is already loaded, and ld.so "
                                                "would bind the plugin to it (give each build's dependency its own SONAME)");
  }

  template <class Call>
  hook_outcome hook(module_errc code, const char* what, Call call) {
    try {
      return run_hook(std::move(call), ctx_->options.hook_deadline);
    } catch (const std::system_error& e) {  // no thread: the hook never ran
      static_cast<void>(code);
      throw module_error(module_errc::resource_exhausted, file_,
                         std::string("resource exhausted: no thread for ") + what + ": " + e.what());
    }
  }

  void report_failure(module_errc code, const char* what, const hook_outcome& o) {
    switch (o.kind) {
      case hook_outcome::timed_out:
        hung_ = true;  // a thread is still inside the plugin: never unload it
        ctx_->hook_timeouts.fetch_add(1, std::memory_order_relaxed);  // a statistic: no partner
        fail(module_errc::hook_timeout, std::string("hook timeout: ") + what + " did not return within " +
                                            std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                               ctx_->options.hook_deadline).count()) +
                                            " ms; the version stays mapped for good");
      case hook_outcome::threw:
        ctx_->hook_exceptions.fetch_add(1, std::memory_order_relaxed);  // a statistic: no partner
        fail(code, std::string(what) + " failed: an exception crossed the plugin ABI: " + o.what);
      case hook_outcome::returned:
        if (o.rc == 0) return;
        fail(code, std::string(what) + " failed: [" + std::to_string(o.error.code != 0 ? o.error.code : o.rc) + "] " +
                       (o.error.message[0] != '\0' ? o.error.message : "no message"));
    }
  }

  // shutdown -> keepalives -> dlclose (if unload-safe and nothing went wrong) -> verify.
  void unload() noexcept {
    const auto began = std::chrono::steady_clock::now();
    std::string why;  // why the code stays mapped, if it does
    const auto ms = [](std::chrono::nanoseconds d) {
      return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + " ms";
    };
    if (record_) record_->drop_serving_hold_if_held();  // never published: drop the serving hold here
    if (started_ && !hung_) {
      try {
        const hook_outcome o = run_hook([fn = desc_->shutdown, state = state_](hotswap_plugin_error*, void**) {
          fn(state);
          return 0;
        }, ctx_->options.hook_deadline);
        if (o.kind == hook_outcome::timed_out) {
          hung_ = true;
          ctx_->hook_timeouts.fetch_add(1, std::memory_order_relaxed);  // a statistic: no partner
          why = "shutdown did not return within " + ms(ctx_->options.hook_deadline);
          emit_event(module_event_kind::stuck, "hook timeout: " + why + "; the version stays mapped for good");
        } else if (o.kind == hook_outcome::threw) {
          ctx_->hook_exceptions.fetch_add(1, std::memory_order_relaxed);  // a statistic: no partner
          why = "shutdown threw (an exception crossed the plugin ABI: " + o.what + ")";
        }
      } catch (...) {  // no thread for the hook: shutdown never ran
        why = "no thread to run shutdown on";
      }
    } else if (hung_) {
      why = "a hook never returned";
    }
    // Keepalives the plugin still holds get until the drain deadline (after shutdown) to go.
    if (record_ && why.empty()) {
      const auto until = std::chrono::steady_clock::now() + ctx_->options.drain_deadline;
      while (record_->holds() > 0 && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      if (record_->holds() > 0) why = "keepalives still held after shutdown";
    }
    if (why.empty() && handle_ != nullptr && !unload_safe_)
      why = "not declared unload-safe (HOTSWAP_PLUGIN_UNLOAD_SAFE)";
    bool mapped = handle_ != nullptr;
    bool quarantine = false;
    if (handle_ != nullptr && why.empty()) {
      auto closed = std::make_shared<dlclose_result>();
      try {
        const hook_outcome o = run_hook([h = handle_, path = copy_.load_path(), closed](hotswap_plugin_error*, void**) {
          close_and_probe(h, path, *closed);
          return 0;
        }, ctx_->options.hook_deadline);
        if (o.kind == hook_outcome::timed_out) {
          why = "dlclose (the plugin's destructors) did not return within " + ms(ctx_->options.hook_deadline);
          emit_event(module_event_kind::stuck, "hook timeout: " + why);
        } else {
          mapped = closed->still_mapped;
          quarantine = mapped;
          why = closed->problem;
        }
      } catch (...) {
        why = "no thread to run dlclose on";
      }
    }
    if (mapped && !quarantine) {
      try {
        keep_forever(std::move(link_));  // its code may still call the host API
      } catch (...) {
        static_cast<void>(link_.release());  // out of memory: leak it rather than free it under running code
      }
    }
    copy_.release(!mapped);
    if (!mapped)
      for (auto it = dependencies_.rbegin(); it != dependencies_.rend(); ++it) {
        std::lock_guard lock(dl_mutex());
        ::dlclose(it->handle);
        it->copy.release(true);
      }
    else
      for (auto& d : dependencies_) d.copy.release(false);
    // Statistics below: relaxed, no partner; nothing is published through them.
    if (record_) {
      const std::uint64_t ns = static_cast<std::uint64_t>(record_->drain_time_so_far().count());
      ctx_->drain_ns_total.fetch_add(ns, std::memory_order_relaxed);
      std::uint64_t max = ctx_->drain_ns_max.load(std::memory_order_relaxed);
      while (max < ns && !ctx_->drain_ns_max.compare_exchange_weak(max, ns, std::memory_order_relaxed)) {
      }
    }
    if (handle_ == nullptr) return;  // nothing was ever mapped
    if (!mapped) {
      ctx_->unloaded.fetch_add(1, std::memory_order_relaxed);
      const std::chrono::duration<double, std::milli> took = std::chrono::steady_clock::now() - began;
      char text[64];
      std::snprintf(text, sizeof text, "unloaded (shutdown and dlclose: %.2f ms)", took.count());
      emit_event(module_event_kind::unloaded, text);
      record_gone(version_state::unloaded);
    } else if (quarantine) {
      ctx_->quarantined.fetch_add(1, std::memory_order_relaxed);
      emit_event(module_event_kind::stayed_mapped, "quarantined: " + why + " (" + id_.load_path + ")");
      record_gone(version_state::quarantined);
    } else {
      ctx_->retained.fetch_add(1, std::memory_order_relaxed);
      emit_event(module_event_kind::retained, "retained: " + why + "; its code stays mapped (" + id_.load_path + ")");
      record_gone(version_state::retained);
    }
  }

  struct dlclose_result {
    bool still_mapped = false;
    std::string problem;
  };

  // On a hook thread: dlclose, then probe by the same name (a handle back: still mapped).
  static void close_and_probe(void* handle, const std::string& path, dlclose_result& out) {
    std::lock_guard lock(dl_mutex());
    if (::dlclose(handle) != 0) out.problem = "dlclose failed: " + last_dl_error() + "; ";
    if (void* again = ::dlopen(path.c_str(), RTLD_NOLOAD | RTLD_LAZY); again != nullptr) {
      ::dlclose(again);
      out.still_mapped = true;
      out.problem += "still mapped after dlclose (GNU unique symbol, nodelete, or a thread_local destructor owed)";
    }
  }

  void emit_event(module_event_kind kind, std::string message) {
    // Counted and logged before mark_gone wakes wait_gone(): whoever saw the
    // version gone also sees its event.
    ctx_->emit({kind, {}, id_.module, id_.file, record_ ? record_->number() : 0, 0, id_.build_version, {}, std::move(message)});
  }
  void record_gone(version_state s) {
    if (record_) record_->mark_gone(s);
  }

  // hotswap_host_api, context = the host_link. Valid from startup until
  // shutdown returns (for good if the version stays mapped).
  static int host_keepalive_acquire(void* link) { return static_cast<host_link*>(link)->record->try_hold() ? 1 : 0; }
  static void host_keepalive_release(void* link) {
    static_cast<host_link*>(link)->record->drop_hold();  // may unload the version: nothing after it
  }
  static void host_log(void* link, int level, const char* message) {
    const auto* l = static_cast<host_link*>(link);
    const version_identity& id = l->record->identity();
    l->ctx->emit({module_event_kind::plugin_log, {}, id.module, id.file, l->record->number(), 0, id.build_version, {},
                  "[" + std::to_string(level) + "] " + (message ? message : "")});
  }

  struct loaded_dependency {
    void* handle;
    shadow_copy copy;
  };

  std::shared_ptr<loader_context> ctx_;
  std::filesystem::path file_;
  version_identity id_;
  shadow_copy copy_;
  std::vector<loaded_dependency> dependencies_;
  void* handle_ = nullptr;
  const hotswap_plugin_descriptor* desc_ = nullptr;
  void* state_ = nullptr;
  bool started_ = false;
  bool unload_safe_ = false;
  bool hung_ = false;  // a hook never returned: its code must stay mapped
  swap_timing timing_;
  std::unique_ptr<host_link> link_;
  std::shared_ptr<version_record> record_;
};

/// A published version's unload, on a worker of its own (not the reclaimer).
inline void unload_on_worker(std::unique_ptr<module_image> image) noexcept {
  unload_tracker::instance().begin();
  try {
    std::thread([image = std::move(image)]() mutable {
      image.reset();
      unload_tracker::instance().end();
    }).detach();
  } catch (...) {  // no thread: unload here; the image is still ours (the lambda was never made)
    image.reset();
    unload_tracker::instance().end();
  }
}

}  // namespace detail

/// One loaded version: the T of a module slot. Move-only; destroying it unloads.
class loaded_module {
 public:
  loaded_module(loaded_module&&) noexcept = default;
  loaded_module& operator=(loaded_module&& o) noexcept {
    if (this != &o) {
      release();
      table_ = o.table_;
      state_ = o.state_;
      image_ = std::move(o.image_);
    }
    return *this;
  }
  loaded_module(const loaded_module&) = delete;
  loaded_module& operator=(const loaded_module&) = delete;
  /// A published version (on the reclaimer) unloads on a worker; one never
  /// published (a refused swap, on the swapping thread) unloads here.
  ~loaded_module() { release(); }

  /// The interface table: what callers use, one load away from the slot.
  const void* table() const noexcept { return table_; }
  template <class Interface>
  const Interface& api() const noexcept {
    return *static_cast<const Interface*>(table_);
  }
  void* state() const noexcept { return state_; }

  const hotswap_plugin_descriptor& descriptor() const noexcept { return image_->descriptor(); }
  const version_record& record() const noexcept { return *image_->record(); }
  const std::shared_ptr<version_record>& shared_record() const noexcept { return image_->record(); }

  // Before publishing (module_slot drives these). Each throws module_error.
  void start() {
    image_->start();
    state_ = image_->state();
  }
  void migrate_from(const loaded_module& serving) { image_->migrate_from(*serving.image_); }
  void self_test() { image_->self_test(); }
  /// How long each stage of loading and starting this version took.
  const swap_timing& timing() const noexcept { return image_->timing(); }

 private:
  friend class module_loader;
  explicit loaded_module(std::unique_ptr<detail::module_image> image)
      : table_(image->descriptor().table), image_(std::move(image)) {}

  void release() noexcept {
    if (!image_) return;
    if (image_->published())
      detail::unload_on_worker(std::move(image_));
    else
      image_.reset();
  }

  const void* table_ = nullptr;
  void* state_ = nullptr;
  std::unique_ptr<detail::module_image> image_;
};

/// Reads plugin files under a policy and opens them. Shared by the slots of a
/// registry (one shadow directory, one log, one set of counters).
class module_loader {
 public:
  explicit module_loader(loader_options options = {})
      : ctx_(std::make_shared<detail::loader_context>(std::move(options))) {}

  /// Reads and checks a file (source.hpp). Throws module_error.
  plugin_file read(const std::filesystem::path& path) const {
    return read_plugin_file(path, ctx_->options.policy, ctx_->options.trace);
  }

  /// Loads `file` (ELF check, shadow copy, dlopen, ABI and interface checks);
  /// not started yet. Throws module_error; on a throw nothing stays behind.
  loaded_module open(const plugin_file& file, const interface_id& expected, std::string module = {},
                     const load_request& request = {}) const {
    try {
      auto image = std::make_unique<detail::module_image>(ctx_, file, std::move(module));
      image->open(file, expected, request);
      return loaded_module(std::move(image));
    } catch (const std::bad_alloc&) {
      throw module_error(module_errc::resource_exhausted, file.path, "resource exhausted: out of memory while loading");
    }
  }

  const loader_options& options() const noexcept { return ctx_->options; }
  const shadow_store& shadow() const noexcept { return ctx_->store; }
  /// Never throws (a failing sink is counted in stats().sink_failures).
  void emit(const module_event& e) const noexcept { ctx_->emit(e); }

  loader_stats stats() const noexcept {
    // Relaxed: statistics, read as a snapshot; no partner.
    return {ctx_->loaded.load(std::memory_order_relaxed),          ctx_->unloaded.load(std::memory_order_relaxed),
            ctx_->quarantined.load(std::memory_order_relaxed),     ctx_->drain_ns_total.load(std::memory_order_relaxed),
            ctx_->drain_ns_max.load(std::memory_order_relaxed),    ctx_->retained.load(std::memory_order_relaxed),
            ctx_->hook_timeouts.load(std::memory_order_relaxed),   ctx_->hook_exceptions.load(std::memory_order_relaxed),
            ctx_->sink_failures.load(std::memory_order_relaxed),   ctx_->preflights.load(std::memory_order_relaxed),
            ctx_->preflights_remembered.load(std::memory_order_relaxed)};
  }

 private:
  std::shared_ptr<detail::loader_context> ctx_;
};

inline bool wait_for_unloads(std::chrono::nanoseconds timeout) { return detail::unload_tracker::instance().wait(timeout); }

}  // namespace hotswap::modules
