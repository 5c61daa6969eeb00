// Named modules with history, rollback, policies and an audit log.
//
// A registry is where swap requests arrive. Each request names who asked (a
// principal) and is checked before anything is loaded: the principal must be
// allowed, the file must lie under the allowed directory (no symlink out of
// it), be owned by us or root, not be writable by group or others, and
// optionally hash to an allowed SHA-256. Every swap, rollback and refusal is
// logged with who, what, which versions and the outcome.
//
//   hotswap::modules::registry mods(dom, {.loader = {.policy = {.allowed_dir = "/srv/plugins"}, .log = audit}});
//   mods.add<calc_api>("ops", "calc", "/srv/plugins/calc-1.so");
//   mods.swap("ops", "calc", "/srv/plugins/calc-2.so");
//   mods.get<calc_api>("calc").call([](const calc_api& c) { return c.add(1, 2); });
//   mods.rollback("ops", "calc", 1);        // version 1's bytes, loaded afresh
//
// Rollback keeps the bytes. Each history entry holds the plugin's bytes in
// memory (plugins are small) with their SHA-256. Rolling back loads them into
// a new shadow copy under a new name and runs the full swap (startup, migrate,
// self_test) again. Not the old shadow copy: it is deleted at unload so that
// "unmapped" can be verified and no name is ever reused. Not the original
// file: it has usually been overwritten by then, which is the point of a
// rollback. The hash is checked against the allow list again. The same holds
// for its dependencies: the bytes checked when that version was first loaded
// are loaded again (their hashes checked against the allow list again), not
// the dependency files on disk now, which may have been replaced or removed.
//
// Drains: a replaced version that has not left the process drain_deadline
// after it was replaced is reported stuck (once) by check_drains(), which the
// host calls from its own periodic loop (or wait_drained(), which calls it);
// the registry starts no thread of its own.
//
// Policies: per_call sessions call the newest version on every call (slot
// call); pinned sessions take a pin when opened and keep that version to the
// end. The flag is per module and can be switched at any time; it applies to
// sessions opened afterwards.
//
// Isolation: the name table is itself published through a kernel slot, so
// get(), open_session() and every call take no lock; add() builds the new
// module (startup and all) before it takes the registry's writer lock for the
// few instructions that publish the new table. Swaps of one module serialise
// on that module alone. A hung hook delays only its own request (hook
// deadline) and a hung shutdown only its own unload worker.
//
// Preflight: every add, swap and rollback first loads the candidate in a
// child process (preflight.hpp) unless registry_options::preflight is off or
// the request says otherwise (request_options::preflight): a watcher or a
// remote request gets it by default; a host loading its own trusted build
// may skip it.
//
// Audit: every request logs exactly one swapped / rolled_back / refused event
// whose from/to versions come from the swap itself (correct under concurrent
// swaps); every refusal, resource errors included, is logged and counted; a
// sink that throws is counted (counters().loads.sink_failures) and changes
// nothing.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

#include <hotswap/domain.hpp>
#include <hotswap/slot.hpp>
#include "canary.hpp"
#include "error.hpp"
#include "module_loader.hpp"
#include "module_slot.hpp"
#include "record.hpp"

namespace hotswap::modules {

struct registry_options {
  /// policy.allowed_dir is required.
  loader_options loader;
  /// Published versions kept for rollback (their bytes stay in memory).
  std::size_t history = 8;
  /// Principals allowed to add, swap and roll back. Empty: anyone who can call us.
  std::vector<std::string> principals;
  slot_options slot;
  call_policy default_policy = call_policy::per_call;
  /// Run the preflight (a child process loads the candidate first) for
  /// requests that do not say otherwise.
  bool preflight = true;
};

/// Per request: overrides of the registry's defaults.
struct request_options {
  std::optional<bool> preflight;  ///< unset: registry_options::preflight
  std::string expected_sha256;    ///< non-empty: only these bytes (load_request::expected_sha256)
};

struct registry_counters {
  std::uint64_t swaps = 0;      ///< published by add or swap
  std::uint64_t rollbacks = 0;  ///< published by rollback
  std::uint64_t refusals = 0;   ///< requests that published nothing
  loader_stats loads;           ///< unloads, quarantines, drain time
};

/// A caller's view under a module's policy: pinned sessions keep one version.
template <class Interface, class Domain = domain>
class module_session {
 public:
  module_session(module_ref<Interface, Domain> ref, call_policy p)
      : ref_(ref), pin_(p == call_policy::pinned ? ref.pin() : module_pin<Interface, Domain>()) {}

  template <class F>
  decltype(auto) call(F&& f) const {
    if (pin_) return detail::invoke_typed<Interface>(f, pin_.module());
    return ref_.call(std::forward<F>(f));
  }
  call_policy policy() const noexcept { return pin_ ? call_policy::pinned : call_policy::per_call; }
  /// The pinned version, or 0 for a per-call session.
  std::uint64_t pinned_version() const noexcept { return pin_ ? pin_.version().number : 0; }

 private:
  module_ref<Interface, Domain> ref_;
  module_pin<Interface, Domain> pin_;
};

template <class Domain = domain>
class basic_registry {
  using module_type = basic_module_slot<Domain>;
  using canary_type = basic_canary<Domain>;

 public:
  basic_registry(Domain& d, registry_options options)
      : domain_(d), options_(std::move(options)), names_(d, "names", {.max_draining = 1024}, name_table{}) {
    if (options_.loader.policy.allowed_dir.empty())
      throw std::invalid_argument("hotswap::modules::registry: loader.policy.allowed_dir must name the plugin directory");
    loader_ = std::make_shared<const module_loader>(options_.loader);
  }
  basic_registry(const basic_registry&) = delete;
  basic_registry& operator=(const basic_registry&) = delete;

  /// Retires every module and runs pending unloads (on their workers, waited
  /// for up to the drain deadline plus two hook deadlines). Versions still
  /// pinned unload when their last pin goes. Not from inside a read section.
  ~basic_registry() {
    // Waits for room rather than leave a table naming the modules freed below
    // (name tables are never pinned, so room comes with a grace period).
    if (!names_.publish_until(name_table{}, std::chrono::steady_clock::now() + std::chrono::minutes(1))) {
      std::fputs("hotswap: registry destroyed inside a read section, or its name tables never drained\n", stderr);
      std::terminate();
    }
    owned_.clear();
    domain_.barrier();
    const auto& o = loader_->options();
    loader_->wait_for_unloads(o.drain_deadline + 2 * o.hook_deadline);
  }

  // ---- requests ---------------------------------------------------------------

  /// Loads the first version of a new module. Throws module_error.
  std::uint64_t add(std::string_view principal, const std::string& name, const interface_id& iface,
                    const std::filesystem::path& file, const request_options& request = {}) {
    return audited(principal, name, file, module_event_kind::swapped, {}, [&] {
      authorize(principal, file);
      if (find_if_any(name))
        throw module_error(module_errc::conflict, file, "conflict: module '" + name + "' already exists");
      swap_timing::duration read{};
      plugin_file f = detail::timed(read, [&] { return loader_->read(file); });
      auto e = std::make_unique<entry>();
      e->policy.store(options_.default_policy, std::memory_order_relaxed);  // published with the entry's table
      // Built (startup and all) before any registry lock: callers and other requests never wait for it.
      e->slot = std::make_unique<module_type>(domain_, loader_, name, iface, f, options_.slot, load_request_for(request));
      e->canary = std::make_unique<canary_type>(domain_, *e->slot, promoter(*e, name));
      const std::uint64_t v = e->slot->current_version();
      auto record = e->slot->record(v);
      swap_timing timing = e->slot->first_timing();
      timing.read = read;
      f.fd.reset();  // history keeps bytes, not descriptors
      e->remember(v, std::move(f), record, options_.history);
      {
        std::lock_guard lock(mutex_);
        name_table next = names_.call([](const name_table& t) { return t; });
        if (!next.emplace(name, e.get()).second)  // another add of this name won the race
          throw module_error(module_errc::conflict, file, "conflict: module '" + name + "' already exists");
        owned_.push_back(std::move(e));
        if (!names_.publish(std::move(next))) {  // release inside: readers see the whole entry
          owned_.pop_back();  // refused: the add fails whole, nothing half-registered
          throw module_error(module_errc::backpressure, file, "backpressure: 1,024 name tables still draining");
        }
      }
      swaps_.fetch_add(1, std::memory_order_relaxed);  // a statistic: no partner
      return swap_result{v, 0, std::move(record), nullptr, timing};
    }).version;
  }
  template <class Interface>
  std::uint64_t add(std::string_view principal, const std::string& name, const std::filesystem::path& file,
                    const request_options& request = {}) {
    return add(principal, name, interface_of<Interface>(), file, request);
  }

  /// Publishes `file` as the next version of `name`, or throws module_error
  /// and publishes nothing. With `expected`: only if that version still serves.
  swap_result swap(std::string_view principal, const std::string& name, const std::filesystem::path& file,
                   std::optional<std::uint64_t> expected = {}, const request_options& request = {}) {
    return audited(principal, name, file, module_event_kind::swapped, {}, [&] {
      authorize(principal, file);
      entry* e = find(name, file);
      swap_timing::duration read{};
      plugin_file f = detail::timed(read, [&] { return loader_->read(file); });
      swap_result r = e->slot->swap(f, expected, load_request_for(request));
      r.timing.read = read;
      f.fd.reset();  // history keeps bytes, not descriptors
      e->remember(r.version, std::move(f), e->slot->record(r.version), options_.history);
      swaps_.fetch_add(1, std::memory_order_relaxed);  // a statistic: no partner
      return r;
    });
  }

  /// Publishes again the bytes of an earlier `version` of `name` (as a new version number).
  swap_result rollback(std::string_view principal, const std::string& name, std::uint64_t version,
                       const request_options& request = {}) {
    std::optional<plugin_file> f;
    std::shared_ptr<const std::vector<checked_dependency>> deps;
    if (entry* e = find_if_any(name)) std::tie(f, deps) = e->bytes_of(version);
    const std::filesystem::path file = f ? f->path : std::filesystem::path(name);
    return audited(principal, name, file, module_event_kind::rolled_back,
                   " (rollback to version " + std::to_string(version) + ")", [&] {
                     authorize(principal, file);
                     entry* e = find(name, file);
                     if (!f)
                       throw module_error(module_errc::unknown_version, file,
                                          "unknown version: " + std::to_string(version) + " is not in the history");
                     detail::check_allowed_hash(*f, loader_->options().policy);
                     load_request load = load_request_for(request);
                     if (deps) {  // the dependency bytes checked for that version, not today's files
                       for (const checked_dependency& d : *deps) detail::check_allowed_hash(d.file, loader_->options().policy);
                       load.dependencies = std::move(deps);
                     }
                     swap_result r = e->slot->swap(*f, std::nullopt, load);
                     e->remember(r.version, std::move(*f), e->slot->record(r.version), options_.history);
                     rollbacks_.fetch_add(1, std::memory_order_relaxed);  // a statistic: no partner
                     return r;
                   });
  }

  /// Loads `file` as a canary of `name` beside its serving version (every check
  /// a swap runs) and starts routing to it under `policy`; the host then calls
  /// canary(name).evaluate() periodically. Throws module_error (logged,
  /// counted) and changes nothing if it cannot.
  swap_result start_canary(std::string_view principal, const std::string& name, const std::filesystem::path& file,
                           const canary_policy& policy, const request_options& request = {}) {
    return audited(principal, name, file, module_event_kind::canary, " (canary started)", [&] {
      authorize(principal, file);
      entry* e = find(name, file);
      swap_timing::duration read{};
      const plugin_file f = detail::timed(read, [&] { return loader_->read(file); });
      swap_result r = e->canary->start(principal, f, policy, load_request_for(request));
      r.timing.read = read;
      return r;
    });
  }
  /// The canary controller of `name` (idle until start_canary()).
  canary_type& canary(const std::string& name) const { return *find(name, name)->canary; }

  // ---- callers ----------------------------------------------------------------

  template <class Interface>
  module_ref<Interface, Domain> get(const std::string& name) {
    return module_ref<Interface, Domain>(*find(name, name)->slot);
  }
  module_type& module(const std::string& name) { return *find(name, name)->slot; }

  void set_policy(const std::string& name, call_policy p) {
    find(name, name)->policy.store(p, std::memory_order_relaxed);  // a flag: no data published with it
  }
  call_policy policy(const std::string& name) {
    return find(name, name)->policy.load(std::memory_order_relaxed);  // a flag; no partner
  }

  template <class Interface>
  module_session<Interface, Domain> open_session(const std::string& name) {
    entry* e = find(name, name);
    return module_session<Interface, Domain>(module_ref<Interface, Domain>(*e->slot),
                                             e->policy.load(std::memory_order_relaxed));  // a flag; no partner
  }

  // ---- status -----------------------------------------------------------------

  /// History and live versions of `name`, oldest first: serving, draining (with
  /// pins and keepalives), stuck, unloaded, quarantined.
  std::vector<version_report> status(const std::string& name) {
    entry* e = find(name, name);
    std::vector<version_report> out = e->slot->versions();
    for (const version_report& r : e->history_reports())
      if (std::none_of(out.begin(), out.end(), [&](const version_report& o) { return o.number == r.number; }))
        out.push_back(r);
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.number < b.number; });
    return out;
  }

  /// Reports (once) versions past the drain deadline, for every module.
  std::vector<version_report> check_drains() {
    std::vector<version_report> out;
    for (module_type* m : all())
      for (auto& r : m->check_drains()) out.push_back(std::move(r));
    return out;
  }

  bool wait_drained(const std::string& name, std::uint64_t version, std::chrono::nanoseconds timeout) {
    return find(name, name)->slot->wait_drained(version, timeout);
  }

  registry_counters counters() const {
    // Relaxed: statistics, read as a snapshot; no partner.
    return {swaps_.load(std::memory_order_relaxed), rollbacks_.load(std::memory_order_relaxed),
            refusals_.load(std::memory_order_relaxed), loader_->stats()};
  }

  std::vector<std::string> names() const {
    return names_.call([](const name_table& t) {
      std::vector<std::string> out;
      for (const auto& [name, e] : t) out.push_back(name);
      return out;
    });
  }

  const module_loader& loader() const noexcept { return *loader_; }
  Domain& get_domain() const noexcept { return domain_; }

 private:
  struct history_item {
    std::uint64_t number;
    plugin_file file;  // bytes kept for rollback
    std::shared_ptr<const version_record> record;
  };

  struct entry {
    std::unique_ptr<module_type> slot;
    std::unique_ptr<canary_type> canary;  // after slot: destroyed first, it refers to the slot
    std::atomic<call_policy> policy{call_policy::per_call};
    mutable std::mutex mutex;           // history
    std::deque<history_item> history;   // oldest first

    void remember(std::uint64_t n, plugin_file f, std::shared_ptr<const version_record> r, std::size_t keep) {
      std::lock_guard lock(mutex);
      history.push_back({n, std::move(f), std::move(r)});
      while (history.size() > std::max<std::size_t>(keep, 1)) history.pop_front();
    }
    /// The version's bytes and the dependency bytes it was loaded with, if it is in the history.
    std::pair<std::optional<plugin_file>, std::shared_ptr<const std::vector<checked_dependency>>> bytes_of(
        std::uint64_t n) const {
      std::lock_guard lock(mutex);
      for (const auto& h : history)
        if (h.number == n) return {h.file, h.record ? h.record->dependencies() : nullptr};
      return {};
    }
    std::vector<version_report> history_reports() const {
      std::lock_guard lock(mutex);
      std::vector<version_report> out;
      for (const auto& h : history)
        if (h.record) out.push_back(h.record->report());
      return out;
    }
  };

  // A canary's promotion: the candidate's bytes as the next version, audited
  // and kept in the history like any swap (its preflight already ran).
  typename canary_type::promote_fn promoter(entry& e, const std::string& name) {
    return [this, &e, name](const plugin_file& f) {
      return audited("canary", name, f.path, module_event_kind::swapped, " (canary promoted)", [&] {
        swap_result r = e.slot->swap(f, std::nullopt, load_request{});
        plugin_file kept = f;
        kept.fd.reset();  // history keeps bytes, not descriptors
        e.remember(r.version, std::move(kept), e.slot->record(r.version), options_.history);
        swaps_.fetch_add(1, std::memory_order_relaxed);  // a statistic: no partner
        return r;
      });
    };
  }

  // No lock: one read of the published name table (entries live as long as the registry).
  entry* find_if_any(const std::string& name) const {
    return names_.call([&](const name_table& t) -> entry* {
      auto it = t.find(name);
      return it == t.end() ? nullptr : it->second;
    });
  }
  entry* find(const std::string& name, const std::filesystem::path& file) const {
    if (entry* e = find_if_any(name)) return e;
    throw module_error(module_errc::unknown_module, file, "unknown module '" + name + "'");
  }

  std::vector<module_type*> all() {
    return names_.call([](const name_table& t) {
      std::vector<module_type*> out;
      for (const auto& [name, e] : t) out.push_back(e->slot.get());
      return out;
    });
  }

  load_request load_request_for(const request_options& r) const {
    return {r.preflight.value_or(options_.preflight), nullptr, r.expected_sha256};
  }

  void authorize(std::string_view principal, const std::filesystem::path& file) const {
    const auto& allowed = options_.principals;
    if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), principal) == allowed.end())
      throw module_error(module_errc::principal_not_allowed, file,
                         "principal not allowed: '" + std::string(principal) + "' may not change modules");
  }

  // Runs a request; logs its outcome (versions from the swap itself); counts
  // and rethrows a refusal, turning resource errors into module_error too.
  template <class Request>
  swap_result audited(std::string_view principal, const std::string& name, const std::filesystem::path& file,
                      module_event_kind kind, const std::string& note, Request&& request) {
    module_event e{kind, std::string(principal), name, file.string(), 0, 0, {}, {}, {}};
    auto refused = [&](const module_error& err) {
      refusals_.fetch_add(1, std::memory_order_relaxed);  // a statistic: no partner
      e.kind = module_event_kind::refused;
      if (entry* m = find_if_any(name)) {  // what serves now: the refusal changed nothing
        e.from_version = m->slot->current_version();
        e.from_build = build_of(*m, e.from_version);
      }
      e.message = std::string(err.what()) + note;
      loader_->emit(e);  // never throws
    };
    swap_result r;
    try {
      r = request();
    } catch (const module_error& err) {
      refused(err);
      throw;
    } catch (const std::bad_alloc&) {
      const module_error err(module_errc::resource_exhausted, file, "resource exhausted: out of memory");
      refused(err);
      throw err;
    } catch (const std::system_error& x) {
      const module_error err(module_errc::resource_exhausted, file, std::string("resource exhausted: ") + x.what());
      refused(err);
      throw err;
    }
    e.from_version = r.replaced;
    if (r.replaced_record) e.from_build = r.replaced_record->identity().build_version;
    e.to_version = r.version;
    if (r.record) e.to_build = r.record->identity().build_version;
    e.message = "ok" + note;
    if (r.record) e.message += ": sha256 " + r.record->identity().sha256;
    e.message += "; " + to_string(r.timing);
    loader_->emit(e);  // never throws: a failing sink cannot turn a published swap into a refusal
    return r;
  }

  static std::string build_of(const entry& m, std::uint64_t version) {
    auto rec = m.slot->record(version);
    return rec ? rec->identity().build_version : std::string();
  }

  Domain& domain_;
  registry_options options_;
  std::shared_ptr<const module_loader> loader_;
  using name_table = std::map<std::string, entry*, std::less<>>;
  std::mutex mutex_;                          // writers of the name table (add) only
  std::vector<std::unique_ptr<entry>> owned_;  // guarded by mutex_; never shrinks while the registry lives
  slot<name_table, Domain> names_;             // what get() reads, lock-free
  std::atomic<std::uint64_t> swaps_{0}, rollbacks_{0}, refusals_{0};
};

using registry = basic_registry<domain>;

}  // namespace hotswap::modules
