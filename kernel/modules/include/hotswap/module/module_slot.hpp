// A plugin behind a hotswap::slot: swap real code while callers keep calling.
//
// A swap prepares the new version completely before anyone can reach it:
//
//   read + check the file -> shadow copy -> dlopen -> ABI and interface check
//   -> startup -> migrate(state of the serving version) -> self_test -> publish
//
// A failure at any step publishes nothing: the serving version keeps serving,
// the half-made version is unloaded on the spot, and the module_error names the
// file and the cause. After the publish the old version drains (grace period,
// pins, keepalives) and is then shut down and unloaded on the reclaimer.
//
//   hotswap::modules::module_slot<calc_api> calc(dom, loader, "calc", "/srv/plugins/calc.so");
//   calc.call([](const calc_api& api) { return api.add(1, 2); });   // per call: newest
//   auto session = calc.pin();  session->add(1, 2);                 // pinned: one version
//   calc.swap("/srv/plugins/calc.so");                              // new build, no pause
//
// A keyed call (call_routed) is the one a host that runs canaries makes: it
// loads the slot's routing word (routing.hpp) instead of the kernel slot's
// version word, which costs what a plain call costs while no canary runs and
// adds a hash and a compare while one does (canary.hpp).
//
// Host-side async work (a timer that will call into the plugin) holds a pin;
// the plugin's own async work holds a keepalive (plugin.h). Either keeps the
// version loaded; neither blocks a swap.
//
// Two locks, neither on the call path: swaps of one slot serialise on
// swap_mutex_, held across the new version's hooks (each under the hook
// deadline); the bookkeeping (serving record, live records) sits under
// mutex_, held only for a few instructions. So status pages and drain checks
// never wait for a slow startup, and nothing of one slot waits for another's.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <hotswap/domain.hpp>
#include <hotswap/options.hpp>
#include <hotswap/pin.hpp>
#include <hotswap/slot.hpp>
#include "error.hpp"
#include "module_loader.hpp"
#include "record.hpp"
#include "routing.hpp"
#include "swap_timing.hpp"

namespace hotswap::modules {

/// What a successful swap did.
struct swap_result {
  std::uint64_t version = 0;   ///< the version now serving
  std::uint64_t replaced = 0;  ///< the version it replaced (now draining)
  std::shared_ptr<const version_record> record;
  std::shared_ptr<const version_record> replaced_record;  ///< null for a first version
  swap_timing timing;  ///< where the request's time went (read: set by whoever read the file)
};

namespace detail {

template <class Domain>
class pinned_hold final : public self_hold {
 public:
  explicit pinned_hold(hotswap::pin<loaded_module, Domain> p) noexcept : pin_(std::move(p)) {}
  void drop() noexcept override {
    hotswap::pin<loaded_module, Domain> last = std::move(pin_);  // out of *this before the release
    last.reset();
  }

 private:
  hotswap::pin<loaded_module, Domain> pin_;
};

}  // namespace detail

/// The untyped module slot: a registry holds these; module_slot<I> adds types.
template <class Domain = domain>
class basic_module_slot {
 public:
  using slot_type = slot<loaded_module, Domain>;
  using reader = typename slot_type::reader;

  /// Loads, starts and self-tests `first`, which then serves. Throws module_error.
  basic_module_slot(Domain& d, std::shared_ptr<const module_loader> loader, std::string name, interface_id iface,
                    const plugin_file& first, slot_options options = {}, const load_request& request = {})
      : basic_module_slot(d, loader, name, iface, prepare(*loader, iface, name, first, nullptr, request), options) {}
  basic_module_slot(Domain& d, std::shared_ptr<const module_loader> loader, std::string name, interface_id iface,
                    const std::filesystem::path& first, slot_options options = {})
      : basic_module_slot(d, loader, std::move(name), std::move(iface), loader->read(first), options) {}

  basic_module_slot(const basic_module_slot&) = delete;
  basic_module_slot& operator=(const basic_module_slot&) = delete;

  /// Retires the serving version: it unloads once drained (host: domain.barrier()).
  ~basic_module_slot() {
    std::shared_ptr<version_record> serving;
    {
      std::lock_guard lock(mutex_);
      serving = serving_;
    }
    serving->retire();  // drops the self pin; the slot's destructor then retires the block
  }

  // ---- swapping -----------------------------------------------------------

  /// Publishes `next` in place of the serving version, or throws module_error
  /// and publishes nothing. With `expected`, only if that version still serves.
  swap_result swap(const plugin_file& next, std::optional<std::uint64_t> expected = {}, const load_request& request = {}) {
    std::lock_guard swapping(swap_mutex_);
    std::shared_ptr<version_record> serving;
    {
      std::lock_guard lock(mutex_);
      serving = serving_;
    }
    const std::uint64_t serving_number = serving->number();
    if (expected && *expected != serving_number)
      throw module_error(module_errc::conflict, next.path,
                         "conflict: version " + std::to_string(*expected) + " was expected to serve, " +
                             std::to_string(serving_number) + " does");
    refuse_if_full(next.path);
    loaded_module m = prepare(*loader_, iface_, name_, next, serving_module_, request);
    detail::stage_clock clock;
    swap_timing timing = m.timing();
    const std::string label = m.descriptor().build_version;
    auto record = m.shared_record();
    const publish_result r = slot_.publish(std::move(m), label);
    if (!r) throw module_error(module_errc::backpressure, next.path, "backpressure: too many versions draining");
    adopt_serving(r.version);
    serving->retire();  // may start its drain at once
    {
      std::lock_guard lock(mutex_);
      prune();
    }
    clock.lap(timing.publish);
    return {r.version, serving_number, std::move(record), std::move(serving), timing};
  }
  swap_result swap(const std::filesystem::path& next, std::optional<std::uint64_t> expected = {},
                   const load_request& request = {}) {
    swap_timing::duration read{};
    const plugin_file file = detail::timed(read, [&] { return loader_->read(next); });
    swap_result r = swap(file, expected, request);
    r.timing.read = read;
    return r;
  }

  // ---- calling ------------------------------------------------------------

  /// f(const loaded_module&) inside one read section of the newest version.
  template <class F>
  decltype(auto) call(F&& f) const {
    return slot_.call(std::forward<F>(f));
  }
  template <class F>
  decltype(auto) call(reader& r, F&& f) const {
    return slot_.call(r, std::forward<F>(f));
  }
  /// Keeps the serving version loaded until dropped: sessions, and host-side
  /// async work that will call into the plugin later.
  hotswap::pin<loaded_module, Domain> pin() const { return slot_.pin(); }
  hotswap::pin<loaded_module, Domain> pin(reader& r) const { return slot_.pin(r); }

  // ---- calling by key (canary routing) --------------------------------------

  /// f(const loaded_module&, side) inside one read section, on the side `key`
  /// is routed to: stable unless a canary route takes the key.
  template <class F>
  decltype(auto) call_routed(reader& r, std::uint64_t key, F&& f) const {
    std::lock_guard section(r);
    const std::uintptr_t w = routing_.load();
    if (!routing_type::routed(w)) [[likely]] return f(routing_type::serving(w), side::stable);
    const canary_route<Domain>& c = routing_type::route_of(w);
    const bool candidate = c.takes(key);
    // The side by a mask, not a branch: keys hash at random, a branch would miss half the time.
    const std::uintptr_t pick = std::uintptr_t{0} - static_cast<std::uintptr_t>(candidate);
    const std::uintptr_t m = (reinterpret_cast<std::uintptr_t>(&c.candidate.value()) & pick) |
                             (reinterpret_cast<std::uintptr_t>(c.stable) & ~pick);
    return f(*reinterpret_cast<const loaded_module*>(m), static_cast<side>(candidate));
  }
  /// g(const loaded_module& stable, const canary_route<Domain>* route or null) inside one read section.
  template <class G>
  decltype(auto) with_routing(reader& r, G&& g) const {
    std::lock_guard section(r);
    const std::uintptr_t w = routing_.load();
    return g(routing_type::stable(w), routing_type::routed(w) ? &routing_type::route_of(w) : nullptr);
  }
  /// Whether a canary route is published now (a hint: test again inside a section).
  bool routed_now() const noexcept { return routing_.routed_now(); }

  /// Routes `weight_bp` of the keys to `candidate` (canary.hpp); replaces any route.
  void route_canary(hotswap::pin<loaded_module, Domain> candidate, std::uint32_t weight_bp, std::uint32_t shadow_bp) {
    std::lock_guard lock(mutex_);
    routing_.route_to(std::move(candidate), weight_bp, shadow_bp);
  }
  /// Every key back to the serving version.
  void unroute_canary() {
    std::lock_guard lock(mutex_);
    routing_.unroute();
  }

  // ---- status -------------------------------------------------------------

  /// The next swap's version is numbered after `number` if that is ahead
  /// (slot::continue_numbering_after: a host that takes over from another).
  void continue_numbering_after(std::uint64_t number) {
    std::lock_guard swapping(swap_mutex_);
    slot_.continue_numbering_after(number);
  }
  std::uint64_t current_version() const {
    std::lock_guard lock(mutex_);
    return serving_->number();
  }
  const std::string& name() const noexcept { return name_; }
  const interface_id& interface() const noexcept { return iface_; }
  const slot_type& kernel_slot() const noexcept { return slot_; }
  const module_loader& loader() const noexcept { return *loader_; }
  /// The stages of the first version's load and hooks (what the constructor took).
  const swap_timing& first_timing() const noexcept { return first_timing_; }

  /// Every version of this slot still in the process, oldest first, with pins.
  std::vector<version_report> versions() const {
    std::vector<version_status> live = slot_.versions();
    std::lock_guard lock(mutex_);
    std::vector<version_report> out;
    for (const auto& rec : records_) {
      version_report r = rec->report();
      if (r.state == version_state::unloaded || r.state == version_state::quarantined) continue;
      for (const version_status& s : live)
        if (s.info.number == r.number) {
          const std::uint64_t self = rec->holds() > 0 ? 1 : 0;  // the self pin is ours, not a caller's
          r.pins = s.pins > self ? s.pins - self : 0;
        }
      out.push_back(std::move(r));
    }
    return out;
  }

  std::shared_ptr<const version_record> record(std::uint64_t version) const {
    std::lock_guard lock(mutex_);
    for (const auto& rec : records_)
      if (rec->number() == version) return rec;
    return nullptr;
  }

  /// Marks versions draining past the drain deadline as stuck and reports each
  /// once (module_event_kind::stuck). Returns the stuck ones.
  std::vector<version_report> check_drains(const std::string& principal = {}) {
    std::vector<version_report> stuck;
    for (const version_report& r : versions()) {
      if (r.state == version_state::stuck) stuck.push_back(r);
      if (r.state != version_state::draining) continue;
      auto rec = std::const_pointer_cast<version_record>(record(r.number));
      if (!rec || !rec->mark_stuck(loader_->options().drain_deadline)) continue;
      version_report now = r;
      now.state = version_state::stuck;
      stuck.push_back(now);
      loader_->emit({module_event_kind::stuck, principal, name_, r.id.file, r.number, 0, r.id.build_version, {},
                     "did not drain within the deadline: " + std::to_string(r.pins) + " pins, " +
                         std::to_string(r.keepalives) + " keepalives"});
    }
    return stuck;
  }

  /// Waits up to `timeout` for `version` to leave the process. False if it is
  /// still there (then check_drains() has had its say).
  bool wait_drained(std::uint64_t version, std::chrono::nanoseconds timeout) {
    auto rec = record(version);
    if (!rec) return true;  // pruned: long gone
    if (rec->wait_gone(timeout)) return true;
    check_drains();
    return false;
  }

 private:
  basic_module_slot(Domain& d, std::shared_ptr<const module_loader> loader, std::string name, interface_id iface,
                    loaded_module&& first, slot_options options)
      : loader_(std::move(loader)),
        routing_(d),
        name_(std::move(name)),
        iface_(std::move(iface)),
        max_draining_(options.max_draining),
        first_timing_(first.timing()),
        slot_(d, first.descriptor().build_version, options, std::move(first)) {
    std::lock_guard swapping(swap_mutex_);
    adopt_serving(slot_.current_version());
  }

  static loaded_module prepare(const module_loader& loader, const interface_id& iface, const std::string& name,
                               const plugin_file& file, const loaded_module* serving, const load_request& request) {
    loaded_module m = loader.open(file, iface, name, request);
    m.start();
    if (serving != nullptr) m.migrate_from(*serving);
    m.self_test();
    return m;
  }

  void refuse_if_full(const std::filesystem::path& file) const {
    const std::size_t n = slot_.draining();
    if (n >= max_draining_)
      throw module_error(module_errc::backpressure, file,
                         "backpressure: " + std::to_string(n) + " replaced versions are still draining");
  }

  // Under swap_mutex_, right after `number` was published: nobody else
  // publishes on slot_, so the pin we take is on that version. Keyed calls
  // move to it here, before the caller drops the replaced version's hold.
  void adopt_serving(std::uint64_t number) {
    hotswap::pin<loaded_module, Domain> self = slot_.pin();
    serving_module_ = &self.value();
    std::shared_ptr<version_record> rec = self->shared_record();
    rec->mark_serving(number);
    // Set before the serving hold can drop (partner: drop_hold's acq_rel).
    rec->set_self_hold(std::make_unique<detail::pinned_hold<Domain>>(std::move(self)));
    std::lock_guard lock(mutex_);
    routing_.serve(*serving_module_);
    serving_ = rec;
    records_.push_back(std::move(rec));
  }

  // Under mutex_.
  void prune() {
    std::erase_if(records_, [](const std::shared_ptr<version_record>& r) { return r->gone(); });
  }

  using routing_type = routing_word<Domain>;

  std::shared_ptr<const module_loader> loader_;
  routing_type routing_;  // written under mutex_; destroyed after slot_
  std::string name_;
  interface_id iface_;
  std::size_t max_draining_;
  swap_timing first_timing_;
  std::mutex swap_mutex_;                               // one swap of this slot at a time, hooks included
  mutable std::mutex mutex_;                            // bookkeeping only: never held across plugin code
  std::shared_ptr<version_record> serving_;             // guarded by mutex_
  const loaded_module* serving_module_ = nullptr;       // guarded by swap_mutex_; alive while serving holds its self pin
  std::vector<std::shared_ptr<version_record>> records_;  // guarded by mutex_; published, not yet gone
  slot_type slot_;  // last: destroyed first, after the destructor dropped the self pin
};

/// A typed pin: one version of a module kept loaded, seen as its interface.
template <class Interface, class Domain = domain>
class module_pin {
 public:
  module_pin() = default;
  explicit module_pin(hotswap::pin<loaded_module, Domain> p) noexcept : pin_(std::move(p)) {}
  explicit operator bool() const noexcept { return static_cast<bool>(pin_); }
  const Interface& operator*() const noexcept { return pin_->template api<Interface>(); }
  const Interface* operator->() const noexcept { return &pin_->template api<Interface>(); }
  void* state() const noexcept { return pin_->state(); }
  const version_info& version() const noexcept { return pin_.version(); }
  const loaded_module& module() const noexcept { return *pin_; }
  void reset() noexcept { pin_.reset(); }

 private:
  hotswap::pin<loaded_module, Domain> pin_;
};

namespace detail {
template <class Interface, class F>
decltype(auto) invoke_typed(F& f, const loaded_module& m) {
  if constexpr (std::is_invocable_v<F&, const Interface&, void*>)
    return f(m.api<Interface>(), m.state());
  else
    return f(m.api<Interface>());
}
}  // namespace detail

/// A typed, non-owning view of a module slot: what a registry hands out.
template <class Interface, class Domain = domain>
class module_ref {
 public:
  using reader = typename basic_module_slot<Domain>::reader;

  /// Throws module_error(interface_mismatch) if the slot serves another interface.
  explicit module_ref(basic_module_slot<Domain>& s) : slot_(&s) {
    const interface_id want = interface_of<Interface>();
    if (want.name != s.interface().name || want.version != s.interface().version ||
        want.table_size > s.interface().table_size)
      throw module_error(module_errc::interface_mismatch, s.name(),
                         "interface mismatch: the module serves '" + s.interface().name + "' version " +
                             std::to_string(s.interface().version) + ", asked for '" + want.name + "' version " +
                             std::to_string(want.version));
  }

  /// f(const Interface&) or f(const Interface&, void* state), per call, newest version.
  template <class F>
  decltype(auto) call(F&& f) const {
    return slot_->call([&](const loaded_module& m) -> decltype(auto) { return detail::invoke_typed<Interface>(f, m); });
  }
  template <class F>
  decltype(auto) call(reader& r, F&& f) const {
    return slot_->call(r, [&](const loaded_module& m) -> decltype(auto) { return detail::invoke_typed<Interface>(f, m); });
  }
  module_pin<Interface, Domain> pin() const { return module_pin<Interface, Domain>(slot_->pin()); }
  basic_module_slot<Domain>& untyped() const noexcept { return *slot_; }

 private:
  basic_module_slot<Domain>* slot_;
};

/// An owning, typed module slot.
template <class Interface, class Domain = domain>
class module_slot : public basic_module_slot<Domain> {
  using base = basic_module_slot<Domain>;

 public:
  using reader = typename base::reader;

  module_slot(Domain& d, std::shared_ptr<const module_loader> loader, std::string name,
              const std::filesystem::path& first, slot_options options = {})
      : base(d, std::move(loader), std::move(name), interface_of<Interface>(), first, options) {}
  module_slot(Domain& d, std::shared_ptr<const module_loader> loader, std::string name, const plugin_file& first,
              slot_options options = {})
      : base(d, std::move(loader), std::move(name), interface_of<Interface>(), first, options) {}

  /// f(const Interface&) or f(const Interface&, void* state), per call, newest version.
  template <class F>
  decltype(auto) call(F&& f) const {
    return base::call([&](const loaded_module& m) -> decltype(auto) { return detail::invoke_typed<Interface>(f, m); });
  }
  template <class F>
  decltype(auto) call(reader& r, F&& f) const {
    return base::call(r, [&](const loaded_module& m) -> decltype(auto) { return detail::invoke_typed<Interface>(f, m); });
  }
  module_pin<Interface, Domain> pin() const { return module_pin<Interface, Domain>(base::pin()); }
  module_pin<Interface, Domain> pin(reader& r) const { return module_pin<Interface, Domain>(base::pin(r)); }
};

}  // namespace hotswap::modules
