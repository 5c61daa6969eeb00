// One version's code in the process, owned: its shadow copy, its dlopen
// handle and those of its dependencies, its descriptor, its state and its
// version record. The loader (module_loader.hpp) checks a candidate and then
// maps it here (map()); module_slot drives its hooks (start, migrate_from,
// self_test), each on another thread with a deadline (hook_runner.hpp: a
// reused one unless the plugin could leave work for a thread's exit), an
// exception that crosses the ABI reported, never rethrown into the host.
//
// Destroying an image unloads it: unload_decision.hpp decides whether its
// code leaves the process (unloaded, retained or quarantined); the image then
// removes or keeps its files and dependencies, counts, and reports the
// verdict as an event and as the record's final state. A version refused
// after its code ran counts against loader_options::max_refused_retained when
// it stays mapped, never against max_retained.
#pragma once

#include <dlfcn.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "../error.hpp"
#include "../plugin.h"
#include "../record.hpp"
#include "../swap_timing.hpp"
#include "dependency_check.hpp"
#include "descriptor_check.hpp"
#include "dl_state.hpp"
#include "global_scope.hpp"
#include "hook_runner.hpp"
#include "host_link.hpp"
#include "loader_context.hpp"
#include "preflight.hpp"
#include "shadow.hpp"
#include "source.hpp"
#include "unload_decision.hpp"

namespace hotswap::modules::detail {

/// What the loader's checks found in a candidate's bytes, before any of its code ran.
struct checked_candidate {
  preflight_expectation expectation;  ///< interface, module name and build from the metadata note
  bool unload_safe = false;           ///< declared HOTSWAP_PLUGIN_UNLOAD_SAFE
  bool shadow_safe = false;           ///< declared HOTSWAP_PLUGIN_SHADOW_SAFE
  std::shared_ptr<const std::vector<checked_dependency>> dependencies;
  std::vector<std::string> exported;  ///< the plugin's exported names (global-scope check)
  std::uint64_t load_segments = 0;    ///< the plugin's own loadable segments
  /// Where its hooks and its dlclose run: reused threads unless it or a
  /// checked dependency could leave work for a thread's exit (hook_runner.hpp).
  hook_thread hooks = hook_thread::dedicated;
};

class module_image {
 public:
  module_image(std::shared_ptr<loader_context> ctx, const plugin_file& file, std::string module,
               checked_candidate checked, const swap_timing& timing)
      : ctx_(std::move(ctx)),
        file_(file.path),
        dependencies_checked_(std::move(checked.dependencies)),
        exported_(std::move(checked.exported)),
        segments_(checked.load_segments),
        unload_safe_(checked.unload_safe),
        shadow_safe_(checked.shadow_safe),
        hooks_(checked.hooks),
        expectation_(std::move(checked.expectation)),
        timing_(timing),
        link_(std::make_unique<host_link>(ctx_)) {
    id_.module = std::move(module);
    id_.file = file.path.string();
    id_.sha256 = file.sha256;
  }
  module_image(const module_image&) = delete;
  module_image& operator=(const module_image&) = delete;
  ~module_image() { unload(); }

  /// Shadow copy, dependencies from their checked bytes, dlopen, descriptor
  /// checks; `clock` charges the shadow and dlopen stages. On a throw the
  /// destructor undoes whatever was done.
  void map(const plugin_file& file, const interface_id& expected, stage_clock& clock) {
    ctx_->step("shadow", file.path);
    copy_ = ctx_->store.place(file);
    id_.load_path = copy_.load_path();
    clock.lap(timing_.shadow);
    ctx_->step("dlopen", file.path);
    {
      dl_lock lock;
      for (const checked_dependency& d : *dependencies_checked_) load_dependency(d);
      handle_ = ::dlopen(copy_.load_path().c_str(), RTLD_NOW | RTLD_LOCAL);
      if (handle_ == nullptr) fail(module_errc::load_failed, std::string("dlopen failed: ") + dl_error_text());
    }
    ctx_->mapped_segments.fetch_add(segments_, std::memory_order_relaxed);  // a statistic: no partner
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
    if (auto problem = check_descriptor_matches_note(*desc_, expectation_.module_name, expectation_.build_version))
      fail(problem->code, problem->cause);
    id_.module_name = desc_->module_name;
    id_.build_version = desc_->build_version;
    id_.interface_version = desc_->interface_version;
    if (id_.module.empty()) id_.module = id_.module_name;
    record_ = std::make_shared<version_record>(id_, dependencies_checked_);
    link_->record = record_;
    clock.lap(timing_.dlopen);
  }

  void start() {
    stage_clock clock;
    ctx_->step("startup", file_);
    const hook_outcome o = hook(module_errc::startup_failed, "startup",
                                [fn = desc_->startup, api = &link_->api](hotswap_plugin_error* e, void** state) {
                                  return fn(api, state, e);
                                });
    state_ = o.state;
    started_ = o.kind == hook_outcome::returned && o.rc == 0;  // only a started version is shut down
    clock.lap(timing_.startup);
    report_failure(module_errc::startup_failed, "startup", o);
    refuse_if_global();
  }

  void migrate_from(const module_image& old) {
    if (desc_->migrate == nullptr) return;
    stage_clock clock;
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
    stage_clock clock;
    ctx_->step("self_test", file_);
    const hook_outcome o =
        hook(module_errc::self_test_failed, "self test",
             [fn = desc_->self_test, state = state_](hotswap_plugin_error* e, void**) { return fn(state, e); });
    clock.lap(timing_.self_test);
    report_failure(module_errc::self_test_failed, "self test", o);
  }

  const hotswap_plugin_descriptor& descriptor() const noexcept { return *desc_; }
  void* state() const noexcept { return state_; }
  const std::shared_ptr<version_record>& record() const noexcept { return record_; }
  bool published() const { return record_ && record_->number() != 0; }
  bool shadow_safe() const noexcept { return shadow_safe_; }
  /// The stages this version's load and hooks have taken so far.
  const swap_timing& timing() const noexcept { return timing_; }
  /// The loader's shared state (its unload tracker among it).
  const std::shared_ptr<loader_context>& context() const noexcept { return ctx_; }

 private:
  [[noreturn]] void fail(module_errc code, const std::string& cause) { throw module_error(code, file_, cause); }

  // Under dl_mutex: the dependency's checked bytes, loaded first so that ld.so
  // binds the plugin's DT_NEEDED to them by SONAME. The same build already
  // loaded for another version is shared; another build under its SONAME is refused.
  void load_dependency(const checked_dependency& d) {
    auto& table = loaded_dependencies();
    if (auto it = table.find(d.soname); it != table.end()) {
      if (it->second.sha256 != d.file.sha256)
        fail(module_errc::dependency_refused,
             "dependency refused: '" + d.soname + "' (sha256 " + d.file.sha256 + ") differs from the build of it " +
                 "already loaded for another version (sha256 " + it->second.sha256 +
                 "), and ld.so binds by SONAME: give each build of a dependency its own SONAME (libx.so.2)");
      void* h = ::dlopen(d.soname.c_str(), RTLD_NOLOAD | RTLD_NOW);  // one more reference to the same bytes
      if (h == nullptr)
        fail(module_errc::dependency_refused, "dependency refused: '" + d.soname + "': dlopen failed: " + dl_error_text());
      ++it->second.users;
      dependencies_.push_back({h, shadow_copy(), d.soname});
      return;
    }
    shadow_copy copy = ctx_->dependency_store.place(d.file);
    void* h = ::dlopen(copy.load_path().c_str(), RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr)
      fail(module_errc::dependency_refused, "dependency refused: '" + d.soname + "': dlopen failed: " + dl_error_text());
    void* by_name = ::dlopen(d.soname.c_str(), RTLD_NOLOAD | RTLD_LAZY);
    if (by_name != nullptr) ::dlclose(by_name);
    if (by_name != h) {
      ::dlclose(h);
      fail(module_errc::dependency_refused, "dependency refused: '" + d.soname +
                                                "': another library with this SONAME is already loaded, and ld.so "
                                                "would bind the plugin to it (give each build's dependency its own SONAME)");
    }
    table[d.soname] = {d.file.sha256, 1};
    dependencies_.push_back({h, std::move(copy), d.soname});
    segments_ += d.load_segments;
  }

  // After code of the load ran: none of its objects may have joined the global scope.
  void refuse_if_global() {
    std::vector<std::pair<void*, const std::vector<std::string>*>> objects = {{handle_, &exported_}};
    for (std::size_t i = 0; i < dependencies_.size(); ++i)
      objects.emplace_back(dependencies_[i].handle, &(*dependencies_checked_)[i].exported);
    for (const auto& [handle, exported] : objects)
      if (auto name = interposed_symbol(handle, *exported))
        fail(module_errc::global_scope,
             "promoted to global scope: after startup a global lookup of '" + *name + "' resolves into " +
                 (handle == handle_ ? std::string("the plugin") : "its dependency") +
                 ", which the loader opened RTLD_LOCAL: its symbols would take the place of other modules' "
                 "(refused; its code stays mapped and in the global scope until the process ends)");
  }

  template <class Call>
  hook_outcome hook(module_errc code, const char* what, Call call) {
    try {
      return run_hook(std::move(call), ctx_->options.hook_deadline, hooks_);
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
                                            in_ms(ctx_->options.hook_deadline) + "; the version stays mapped for good");
      case hook_outcome::threw:
        ctx_->hook_exceptions.fetch_add(1, std::memory_order_relaxed);  // a statistic: no partner
        fail(code, std::string(what) + " failed: an exception crossed the plugin ABI: " + o.what);
      case hook_outcome::returned:
        if (o.rc == 0) return;
        fail(code, std::string(what) + " failed: [" + std::to_string(o.error.code != 0 ? o.error.code : o.rc) + "] " +
                       (o.error.message[0] != '\0' ? o.error.message : "no message"));
    }
  }

  // The decision (unload_decision.hpp), then what follows from its verdict.
  void unload() noexcept {
    const auto began = std::chrono::steady_clock::now();
    const bool refused = !published();  // refused after dlopen, or never got that far
    if (record_) record_->drop_serving_hold_if_held();  // never published: drop the serving hold here
    const unload_decision decision = decide_unload(
        {desc_, state_, started_, hung_, unload_safe_, handle_, copy_.load_path(), record_.get(), hooks_}, *ctx_,
        [this](std::string message) { emit_event(module_event_kind::stuck, std::move(message)); });
    const bool mapped = decision.verdict != unload_verdict::unloaded;
    if (decision.verdict == unload_verdict::retained) {
      try {
        keep_forever(std::move(link_));  // its code may still call the host API
      } catch (...) {
        static_cast<void>(link_.release());  // out of memory: leak it rather than free it under running code
      }
    }
    copy_.release(!mapped);
    if (!mapped) {
      for (auto it = dependencies_.rbegin(); it != dependencies_.rend(); ++it) {
        dl_lock lock;
        ::dlclose(it->handle);
        it->copy.release(true);
        auto& table = loaded_dependencies();
        if (auto found = table.find(it->soname); found != table.end() && --found->second.users == 0) table.erase(found);
      }
      if (handle_ != nullptr)  // added once the plugin itself was mapped (its dependencies alone: never added)
        ctx_->mapped_segments.fetch_sub(segments_, std::memory_order_relaxed);  // a statistic: no partner
    } else {
      for (auto& d : dependencies_) d.copy.release(false);
    }
    // Statistics below: relaxed, no partner; nothing is published through them.
    if (record_) {
      const std::uint64_t ns = static_cast<std::uint64_t>(record_->drain_time_so_far().count());
      ctx_->drain_ns_total.fetch_add(ns, std::memory_order_relaxed);
      std::uint64_t max = ctx_->drain_ns_max.load(std::memory_order_relaxed);
      while (max < ns && !ctx_->drain_ns_max.compare_exchange_weak(max, ns, std::memory_order_relaxed)) {
      }
    }
    if (handle_ == nullptr) return;  // nothing was ever mapped
    const bool quarantined = decision.verdict == unload_verdict::quarantined;
    switch (decision.verdict) {
      case unload_verdict::unloaded: {
        ctx_->unloaded.fetch_add(1, std::memory_order_relaxed);
        const std::chrono::duration<double, std::milli> took = std::chrono::steady_clock::now() - began;
        char text[64];
        std::snprintf(text, sizeof text, "unloaded (shutdown and dlclose: %.2f ms)", took.count());
        emit_event(module_event_kind::unloaded, text);
        record_gone(version_state::unloaded);
        return;
      }
      case unload_verdict::retained:
      case unload_verdict::quarantined:
        if (refused) {  // its own budget: refusals never use up max_retained
          ctx_->refused_retained.fetch_add(1, std::memory_order_relaxed);  // a count against a budget: no partner
          emit_event(quarantined ? module_event_kind::stayed_mapped : module_event_kind::retained,
                     "refused and retained: " + decision.cause + "; its code stays mapped (" + id_.load_path +
                         "; loader_options::max_refused_retained)");
        } else if (quarantined) {
          ctx_->quarantined.fetch_add(1, std::memory_order_relaxed);
          emit_event(module_event_kind::stayed_mapped, "quarantined: " + decision.cause + " (" + id_.load_path + ")");
        } else {
          ctx_->retained.fetch_add(1, std::memory_order_relaxed);
          emit_event(module_event_kind::retained,
                     "retained: " + decision.cause + "; its code stays mapped (" + id_.load_path + ")");
        }
        record_gone(quarantined ? version_state::quarantined : version_state::retained);
        return;
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

  struct loaded_dependency {
    void* handle;
    shadow_copy copy;  // empty when the build was already loaded (shared)
    std::string soname;
  };

  std::shared_ptr<loader_context> ctx_;
  std::filesystem::path file_;
  version_identity id_;
  shadow_copy copy_;
  std::vector<loaded_dependency> dependencies_;
  std::shared_ptr<const std::vector<checked_dependency>> dependencies_checked_;  // kept for rollbacks
  std::vector<std::string> exported_;  // the plugin's exported names (global-scope check)
  std::uint64_t segments_ = 0;         // loadable segments this version mapped (with new dependencies)
  void* handle_ = nullptr;
  const hotswap_plugin_descriptor* desc_ = nullptr;
  void* state_ = nullptr;
  bool started_ = false;
  bool unload_safe_ = false;
  bool shadow_safe_ = false;  // declared HOTSWAP_PLUGIN_SHADOW_SAFE in its metadata
  bool hung_ = false;  // a hook never returned: its code must stay mapped
  hook_thread hooks_ = hook_thread::dedicated;  // where hooks and dlclose run (checked_candidate::hooks)
  preflight_expectation expectation_;
  swap_timing timing_;
  std::unique_ptr<host_link> link_;
  std::shared_ptr<version_record> record_;
};

}  // namespace hotswap::modules::detail
