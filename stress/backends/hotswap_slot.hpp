// The hotswap kernel as a backend: a slot over basic_domain<timed<Grace>>.
//
// timed<Grace> is the kernel's own grace policy with two timestamps around
// synchronize(): the reclaimer calls it once per round, so the rig sees every
// grace period, and when one completes it raises the age floor to the version
// that was serving when it began. Nothing else differs from the kernel as
// shipped (same reader, same slot, same reclaimer).
#pragma once

#include <hotswap/domain.hpp>
#include <hotswap/slot.hpp>

#include <atomic>
#include <chrono>
#include <string_view>
#include <utility>

#include "../backend.hpp"

namespace hotswap::stress {

template <class Grace>
class timed : public Grace {
 public:
  explicit timed(const hotswap::domain_options& o) : Grace(o) {}

  /// Set once, right after the domain is built and before anything is retired.
  /// (basic_domain only exposes its policy as const.)
  void attach(run_probe* p) const noexcept { probe_.store(p, std::memory_order_release); }

  void synchronize() {
    run_probe* p = probe_.load(std::memory_order_acquire);
    if (p == nullptr) return Grace::synchronize();
    const auto token = p->grace_begin();
    Grace::synchronize();
    p->grace_end(token);
  }

 private:
  mutable std::atomic<run_probe*> probe_{nullptr};
};

/// Traits: name, description, grace policy and domain options of one variant.
template <class V, class Traits>
class hotswap_slot_backend {
  using domain_type = hotswap::basic_domain<timed<typename Traits::grace>>;
  using slot_type = hotswap::slot<V, domain_type>;

 public:
  static constexpr std::string_view name = Traits::name;
  static constexpr std::string_view description = Traits::description;
  static constexpr std::string_view tsan_note = Traits::tsan_note;

  hotswap_slot_backend(const backend_config& cfg, run_probe& probe, V initial)
      : domain_(Traits::options(cfg)), slot_(domain_, "initial", slot_opts(cfg), std::move(initial)),
        cap_(cfg.max_draining) {
    domain_.grace().attach(&probe);
  }

  class caller {
   public:
    explicit caller(hotswap_slot_backend& b) : slot_(b.slot_), reader_(b.domain_.this_thread()) {}
    template <class F>
    void call(F&& f) {
      slot_.call(reader_, std::forward<F>(f));
      if constexpr (announces) {
        if (++calls_ == quiescent_every) {  // between calls: no reference held
          calls_ = 0;
          reader_.quiescent();
        }
      }
    }
    hotswap::pin<V, domain_type> pin() {
      if constexpr (announces) reader_.quiescent();  // the previous session's pin is gone
      return slot_.pin(reader_);
    }

   private:
    // A qsbr reader holds grace periods until it announces: like a host's
    // event loop, the caller does so once per quiescent_every calls.
    static constexpr bool announces = requires(typename domain_type::reader& r) { r.quiescent(); };
    static constexpr unsigned quiescent_every = 1000;

    slot_type& slot_;
    typename domain_type::reader& reader_;
    unsigned calls_ = 0;
  };

  void attach_writer() {}
  void detach_writer() {}

  bool publish(V&& next) { return static_cast<bool>(slot_.publish(std::move(next))); }
  /// After a refusal: asleep until the reclaimer destroys a replaced version
  /// (slot::wait_for_room), at most 10 ms, so the swapper stays off the
  /// callers' CPUs while the backlog drains.
  void wait_for_room() {
    static_cast<void>(slot_.wait_for_room(std::chrono::steady_clock::now() + std::chrono::milliseconds(10)));
  }

  std::size_t backlog() const { return slot_.draining(); }
  std::size_t cap() const { return cap_; }
  backend_stats stats() const {
    const auto g = domain_.grace_statistics();
    return {static_cast<std::int64_t>(g.grace_periods), Traits::counts_membarriers ? static_cast<std::int64_t>(g.membarriers) : -1};
  }
  void drain() { domain_.barrier(); }

 private:
  static hotswap::slot_options slot_opts(const backend_config& cfg) {
    hotswap::slot_options o;
    o.max_draining = cfg.max_draining;
    return o;
  }

  domain_type domain_;  // first: outlives the slot, drains its versions
  slot_type slot_;
  std::size_t cap_;
};

}  // namespace hotswap::stress
