// One loaded version of a plugin, owned: its shadow copy, dlopen handle,
// descriptor and state. Destroying it unloads it, in this order:
//
//   shutdown(state)  ->  dlclose  ->  dlopen(path, RTLD_NOLOAD) must say "gone"
//                    ->  remove the shadow copy
//
// The last check matters: dlclose is allowed to keep a library mapped (GNU
// unique symbols, a thread_local with a destructor still owed, -z nodelete).
// Such a version is reported (module_event_kind::stayed_mapped) and
// quarantined: its copy stays on disk and its name is never reused, so no
// later dlopen can be handed the old code by mistake.
//
// A loaded_module is the T of a hotswap::slot (module_slot.hpp), so the
// kernel's rule decides when that destructor runs: on the reclaimer thread,
// after the version's grace period, its last pin and its last keepalive.
//
//   module_loader loader(options);
//   loaded_module m = loader.open(loader.read("calc.so"), interface_of<calc_api>(), "calc");
//   m.start();                    // the plugin's startup; throws module_error
//   m.api<calc_api>().add(1, 2);
#pragma once

#include <dlfcn.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "descriptor_check.hpp"
#include "elf_check.hpp"
#include "error.hpp"
#include "plugin.h"
#include "record.hpp"
#include "shadow.hpp"
#include "source.hpp"

namespace hotswap {

/// The interface a host expects: name and version must match the plugin's,
/// and the plugin's table must be at least `table_size` bytes.
template <class Interface>
interface_id interface_of() {
  return {interface_traits<Interface>::name, interface_traits<Interface>::version, sizeof(Interface)};
}

struct loader_options {
  shadow_options shadow;
  source_policy policy;
  /// A replaced version still loaded this long after it was replaced is
  /// reported stuck (once). It keeps draining; nothing is forced.
  std::chrono::nanoseconds drain_deadline = std::chrono::seconds(10);
  module_log log;   ///< unload, stayed_mapped, stuck and plugin_log events
  trace_fn trace;   ///< steps of each load, for tracing and tests
};

/// Counters of a loader, over every version it loaded. Approximate while they change.
struct loader_stats {
  std::uint64_t loaded = 0;
  std::uint64_t unloaded = 0;
  std::uint64_t quarantined = 0;
  std::uint64_t drain_ns_total = 0;  ///< retired -> unloaded, summed over published versions
  std::uint64_t drain_ns_max = 0;
};

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

struct loader_context {
  explicit loader_context(loader_options o) : options(std::move(o)), store(options.shadow) {}
  void emit(const module_event& e) const {
    if (options.log) options.log(e);
  }
  void step(std::string_view stage, const std::filesystem::path& p) const {
    if (options.trace) options.trace(stage, p);
  }

  const loader_options options;
  shadow_store store;
  // Statistics only (relaxed everywhere): they order nothing.
  std::atomic<std::uint64_t> loaded{0}, unloaded{0}, quarantined{0}, drain_ns_total{0}, drain_ns_max{0};
};

/// What a plugin's hotswap_host_api points at. Separate from the image so
/// that a version quarantined with keepalives still out can keep it forever.
struct host_link {
  hotswap_host_api api{};
  std::shared_ptr<loader_context> ctx;
  std::shared_ptr<version_record> record;
};

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

  /// ELF check, shadow copy, dlopen, descriptor checks. On a throw the
  /// destructor undoes whatever was done.
  void open(const plugin_file& file, const interface_id& expected) {
    ctx_->step("check", file.path);
    if (auto problem = check_elf(file.view())) throw module_error(problem->code, file.path, problem->cause);
    ctx_->step("shadow", file.path);
    copy_ = ctx_->store.place(file);
    id_.load_path = copy_.load_path();
    ctx_->step("dlopen", file.path);
    {
      std::lock_guard lock(dl_mutex());
      handle_ = ::dlopen(copy_.load_path().c_str(), RTLD_NOW | RTLD_LOCAL);
      if (handle_ == nullptr) fail(module_errc::load_failed, std::string("dlopen failed: ") + last_dl_error());
    }
    ctx_->loaded.fetch_add(1, std::memory_order_relaxed);  // a statistic: no partner, publishes nothing
    void* entry = ::dlsym(handle_, HOTSWAP_PLUGIN_ENTRY_SYMBOL);
    if (entry == nullptr)
      fail(module_errc::no_descriptor, "no descriptor: the plugin does not export " HOTSWAP_PLUGIN_ENTRY_SYMBOL "()");
    desc_ = reinterpret_cast<hotswap_plugin_entry_fn>(entry)();
    if (auto problem = check_descriptor(desc_, expected)) fail(problem->code, problem->cause);
    id_.module_name = desc_->module_name;
    id_.build_version = desc_->build_version;
    id_.interface_version = desc_->interface_version;
    if (id_.module.empty()) id_.module = id_.module_name;
    record_ = std::make_shared<version_record>(id_);
    link_->record = record_;
  }

  void start() {
    ctx_->step("startup", file_);
    void* state = nullptr;
    hook(module_errc::startup_failed, "startup failed", [&](hotswap_plugin_error* e) {
      return desc_->startup(&link_->api, &state, e);
    });
    state_ = state;
    started_ = true;
  }

  void migrate_from(const module_image& old) {
    if (desc_->migrate == nullptr) return;
    ctx_->step("migrate", file_);
    const hotswap_migration from{old.state_, old.desc_->module_name, old.desc_->build_version,
                                 old.desc_->interface_version};
    hook(module_errc::migrate_failed, "migrate failed", [&](hotswap_plugin_error* e) {
      return desc_->migrate(state_, &from, e);
    });
  }

  void self_test() {
    if (desc_->self_test == nullptr) return;
    ctx_->step("self_test", file_);
    hook(module_errc::self_test_failed, "self test failed", [&](hotswap_plugin_error* e) {
      return desc_->self_test(state_, e);
    });
  }

  ~module_image() { unload(); }

  const hotswap_plugin_descriptor& descriptor() const noexcept { return *desc_; }
  void* state() const noexcept { return state_; }
  const std::shared_ptr<version_record>& record() const noexcept { return record_; }

 private:
  [[noreturn]] void fail(module_errc code, const std::string& cause) { throw module_error(code, file_, cause); }

  static std::string last_dl_error() {
    const char* e = ::dlerror();
    return e != nullptr ? e : "unknown error";
  }

  template <class Call>
  void hook(module_errc code, const char* what, Call&& call) {
    hotswap_plugin_error err{};
    int rc = 0;
    try {
      rc = call(&err);
    } catch (...) {  // a plugin that let an exception escape through its C hook
      fail(code, std::string(what) + ": an exception crossed the plugin ABI");
    }
    if (rc == 0) return;
    err.message[HOTSWAP_PLUGIN_MESSAGE_MAX - 1] = '\0';
    fail(code, std::string(what) + ": [" + std::to_string(err.code != 0 ? err.code : rc) + "] " +
                   (err.message[0] != '\0' ? err.message : "no message"));
  }

  void unload() noexcept {
    bool stuck = false;
    if (record_) {
      // Never published: drop the serving hold here. Keepalives the plugin
      // still holds get until the drain deadline (after shutdown) to go.
      record_->drop_serving_hold_if_held();
      if (started_) desc_->shutdown(state_);
      const auto until = std::chrono::steady_clock::now() + ctx_->options.drain_deadline;
      while (record_->holds() > 0 && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      stuck = record_->holds() > 0;
    } else if (started_) {
      desc_->shutdown(state_);
    }
    bool mapped = false;
    std::string why;
    if (handle_ != nullptr) {
      if (stuck) {
        mapped = true;  // work in flight may still run its code: never dlclose it
        why = "keepalives still held after shutdown; left loaded";
        static_cast<void>(link_.release());  // that work may still call the host API: keep it valid for good
      } else {
        std::lock_guard lock(dl_mutex());
        if (::dlclose(handle_) != 0) why = "dlclose failed: " + last_dl_error() + "; ";
        // Probe by the same name: a handle back means the code is still mapped.
        if (void* again = ::dlopen(copy_.load_path().c_str(), RTLD_NOLOAD | RTLD_LAZY); again != nullptr) {
          ::dlclose(again);
          mapped = true;
          why += "still mapped after dlclose (GNU unique symbol, nodelete, or a thread_local destructor owed)";
        }
      }
    }
    copy_.release(!mapped);
    if (!record_) return;
    // Counted and logged before mark_gone wakes wait_gone(): whoever saw the
    // version gone also sees its event.
    const std::uint64_t ns = static_cast<std::uint64_t>(record_->drain_time_so_far().count());
    // Statistics below: relaxed, no partner; nothing is published through them.
    ctx_->drain_ns_total.fetch_add(ns, std::memory_order_relaxed);
    std::uint64_t max = ctx_->drain_ns_max.load(std::memory_order_relaxed);
    while (max < ns && !ctx_->drain_ns_max.compare_exchange_weak(max, ns, std::memory_order_relaxed)) {
    }
    (mapped ? ctx_->quarantined : ctx_->unloaded).fetch_add(1, std::memory_order_relaxed);
    module_event e{mapped ? module_event_kind::stayed_mapped : module_event_kind::unloaded, {}, id_.module,
                   id_.file, record_->number(), 0, id_.build_version, {},
                   mapped ? "quarantined: " + why + " (" + id_.load_path + ")" : "unloaded"};
    try {
      ctx_->emit(e);
    } catch (...) {  // a log sink's failure must not stop unloading
    }
    record_->mark_gone(mapped);
  }

  // hotswap_host_api, context = the host_link. Valid from startup until
  // shutdown returns (for good if the version is quarantined with keepalives out).
  static int host_keepalive_acquire(void* link) { return static_cast<host_link*>(link)->record->try_hold() ? 1 : 0; }
  static void host_keepalive_release(void* link) {
    static_cast<host_link*>(link)->record->drop_hold();  // may unload the version: nothing after it
  }
  static void host_log(void* link, int level, const char* message) {
    const auto* l = static_cast<host_link*>(link);
    const version_identity& id = l->record->identity();
    module_event e{module_event_kind::plugin_log, {}, id.module, id.file, l->record->number(), 0, id.build_version,
                   {}, "[" + std::to_string(level) + "] " + (message ? message : "")};
    try {
      l->ctx->emit(e);
    } catch (...) {
    }
  }

  std::shared_ptr<loader_context> ctx_;
  std::filesystem::path file_;
  version_identity id_;
  shadow_copy copy_;
  void* handle_ = nullptr;
  const hotswap_plugin_descriptor* desc_ = nullptr;
  void* state_ = nullptr;
  bool started_ = false;
  std::unique_ptr<host_link> link_;
  std::shared_ptr<version_record> record_;
};

}  // namespace detail

/// One loaded version: the T of a module slot. Move-only; destroying it unloads.
class loaded_module {
 public:
  loaded_module(loaded_module&&) noexcept = default;
  loaded_module& operator=(loaded_module&&) noexcept = default;

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

 private:
  friend class module_loader;
  explicit loaded_module(std::unique_ptr<detail::module_image> image)
      : table_(image->descriptor().table), image_(std::move(image)) {}

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
  loaded_module open(const plugin_file& file, const interface_id& expected, std::string module = {}) const {
    auto image = std::make_unique<detail::module_image>(ctx_, file, std::move(module));
    image->open(file, expected);
    return loaded_module(std::move(image));
  }

  const loader_options& options() const noexcept { return ctx_->options; }
  const shadow_store& shadow() const noexcept { return ctx_->store; }
  void emit(const module_event& e) const { ctx_->emit(e); }

  loader_stats stats() const noexcept {
    // Relaxed: statistics, read as a snapshot; no partner.
    return {ctx_->loaded.load(std::memory_order_relaxed), ctx_->unloaded.load(std::memory_order_relaxed),
            ctx_->quarantined.load(std::memory_order_relaxed), ctx_->drain_ns_total.load(std::memory_order_relaxed),
            ctx_->drain_ns_max.load(std::memory_order_relaxed)};
  }

 private:
  std::shared_ptr<detail::loader_context> ctx_;
};

}  // namespace hotswap
