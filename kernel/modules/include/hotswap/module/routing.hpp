// Where a keyed call goes: the serving version, or a canary route beside it,
// in one word -- the only word the call loads.
//
// A module slot keeps, beside its kernel slot, one tagged word: the address of
// the serving version's loaded_module (low bit clear) or, while a canary runs,
// of a canary_route (low bit set) naming stable, the candidate and the
// candidate's share. A keyed call (basic_module_slot::call_routed) loads this
// word *instead of* the kernel slot's current version, so:
//
//   no canary:  one acquire load, a test of a bit already in a register, the call
//               (the plain slot call: one acquire load, the call)
//   canary:     the same load, then the key's hash and one compare pick the side
//
// Lifetimes. Writers republish the word under the module slot's bookkeeping
// mutex. A swap republishes it (the new serving version, or a route naming it)
// before the replaced version drops its serving pin; a caller that read the
// old word is then still inside its read section, and that pin's release
// retires the version to the domain, whose grace period waits for the caller.
// A replaced route is retired to the domain; its candidate pin keeps the
// candidate loaded until every caller that could have read it has left.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <utility>

#include <hotswap/pin.hpp>
#include "loaded_module.hpp"

namespace hotswap::modules {

/// Which version answered a keyed call.
enum class side : std::uint8_t { stable, candidate };

inline const char* to_string(side s) noexcept { return s == side::stable ? "stable" : "candidate"; }

/// A pin on the side a key is routed to (pinned sessions keep it for their life).
template <class Domain>
struct routed_pin {
  hotswap::pin<loaded_module, Domain> pin;
  side on = side::stable;
};

/// A canary's published routing: immutable; replaced whole.
template <class Domain>
struct canary_route {
  const loaded_module* stable = nullptr;  ///< the serving version when published (alive: see above)
  hotswap::pin<loaded_module, Domain> candidate;
  std::uint32_t weight_bp = 0;  ///< real calls, basis points of the keys
  std::uint32_t shadow_bp = 0;  ///< mirrored calls

  // splitmix64's finaliser: every key bit moves every bucket bit.
  static constexpr std::uint64_t mix(std::uint64_t k) noexcept {
    k ^= k >> 30;
    k *= 0xbf58476d1ce4e5b9ULL;
    k ^= k >> 27;
    k *= 0x94d049bb133111ebULL;
    return k ^ (k >> 31);
  }
  // A key's bucket in [0, 10000): the high half of the hash scaled, no division.
  static constexpr std::uint32_t bucket(std::uint64_t h) noexcept {
    return static_cast<std::uint32_t>(((h >> 32) * 10000) >> 32);
  }
  bool takes(std::uint64_t key) const noexcept { return bucket(mix(key)) < weight_bp; }
  // The low half: independent of takes(), so shadow sampling is not biased by the weight.
  bool shadows(std::uint64_t key) const noexcept { return bucket(mix(key) << 32) < shadow_bp; }
};

/// The tagged word and what it is rebuilt from. Readers: load() inside a read
/// section. Writers (serve, route, unroute): under the owner's mutex.
template <class Domain>
class routing_word {
 public:
  using route = canary_route<Domain>;
  static_assert(alignof(loaded_module) >= 2 && alignof(route) >= 2, "the low bit of both addresses is the tag");

  explicit routing_word(Domain& d) noexcept : domain_(d) {}
  routing_word(const routing_word&) = delete;
  routing_word& operator=(const routing_word&) = delete;
  /// The owner's callers have left; a published route goes to the domain.
  ~routing_word() { retire(word_.load(std::memory_order_relaxed)); }  // relaxed: no reader is left

  // ---- readers (inside a read section) ------------------------------------

  /// Acquire pairs with publish()'s release: the module or route is fully built.
  [[gnu::always_inline]] std::uintptr_t load() const noexcept { return word_.load(std::memory_order_acquire); }
  /// A cheap test outside any section (then load() again inside one).
  bool routed_now() const noexcept { return routed(word_.load(std::memory_order_relaxed)); }  // relaxed: a hint

  static bool routed(std::uintptr_t w) noexcept { return (w & tag) != 0; }
  static const loaded_module& serving(std::uintptr_t w) noexcept { return *reinterpret_cast<const loaded_module*>(w); }
  static const route& route_of(std::uintptr_t w) noexcept { return *reinterpret_cast<const route*>(w & ~tag); }
  /// The stable version, routed or not.
  static const loaded_module& stable(std::uintptr_t w) noexcept { return routed(w) ? *route_of(w).stable : serving(w); }

  // ---- writers (under the owner's mutex) ------------------------------------

  /// A new serving version: before the replaced one drops its serving pin.
  void serve(const loaded_module& m) {
    stable_ = &m;
    publish();
  }
  /// Routes `weight_bp` of the keys to `candidate` (and samples `shadow_bp` for shadow runs).
  void route_to(hotswap::pin<loaded_module, Domain> candidate, std::uint32_t weight_bp, std::uint32_t shadow_bp) {
    candidate_.emplace(std::move(candidate));
    weight_bp_ = weight_bp;
    shadow_bp_ = shadow_bp;
    publish();
  }
  /// Every key back to stable; the candidate's pins go with the retired route.
  void unroute() {
    candidate_.reset();
    publish();
  }

 private:
  static constexpr std::uintptr_t tag = 1;

  void publish() {
    const std::uintptr_t next =
        candidate_ ? reinterpret_cast<std::uintptr_t>(new route{stable_, *candidate_, weight_bp_, shadow_bp_}) | tag
                   : reinterpret_cast<std::uintptr_t>(stable_);
    // Release pairs with load()'s acquire: the route (and its pin) is built before anyone reads it.
    retire(word_.exchange(next, std::memory_order_acq_rel));
  }
  void retire(std::uintptr_t old) {
    if (routed(old)) domain_.retire(const_cast<route*>(&route_of(old)), [](route* p) { delete p; });
  }

  Domain& domain_;
  alignas(64) std::atomic<std::uintptr_t> word_{0};  // what keyed calls load; set by serve() before any call
  // Below: under the owner's mutex.
  const loaded_module* stable_ = nullptr;
  std::optional<hotswap::pin<loaded_module, Domain>> candidate_;
  std::uint32_t weight_bp_ = 0, shadow_bp_ = 0;
};

}  // namespace hotswap::modules
