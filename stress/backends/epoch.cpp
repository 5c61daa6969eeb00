// hotswap's default domain (epoch announce + lazy membarrier), in both of its
// reader modes: membarrier (readers pay a compiler barrier) and fence.
#include <hotswap/epoch_grace.hpp>

#include "../registry.hpp"
#include "../rig.hpp"
#include "hotswap_slot.hpp"

namespace hotswap::stress {
namespace {

struct epoch_membarrier_traits {
  using grace = hotswap::epoch_grace;
  static constexpr std::string_view name = "epoch-membarrier";
  static constexpr std::string_view description =
      "hotswap::domain, grace_mode::membarrier (the default on Linux >= 4.14): readers pay a compiler barrier";
  static constexpr std::string_view tsan_note = {};
  static constexpr bool counts_membarriers = true;
  static hotswap::domain_options options(const backend_config& cfg) {
    hotswap::domain_options o;
    o.grace = hotswap::grace_mode::membarrier;  // throws where unavailable: the run is then skipped
    if (cfg.membarrier_after_ns >= 0) o.membarrier_after = std::chrono::nanoseconds(cfg.membarrier_after_ns);
    return o;
  }
};

struct epoch_fence_traits {
  using grace = hotswap::epoch_grace;
  static constexpr std::string_view name = "epoch-fence";
  static constexpr std::string_view description =
      "hotswap::domain, grace_mode::fence: readers pay a full fence, writers never interrupt them";
  static constexpr std::string_view tsan_note = {};
  static constexpr bool counts_membarriers = true;
  static hotswap::domain_options options(const backend_config&) {
    hotswap::domain_options o;
    o.grace = hotswap::grace_mode::fence;
    return o;
  }
};

template <class V>
using epoch_membarrier_backend = hotswap_slot_backend<V, epoch_membarrier_traits>;
template <class V>
using epoch_fence_backend = hotswap_slot_backend<V, epoch_fence_traits>;

}  // namespace

backend_entry epoch_membarrier_entry() { return make_backend_entry<epoch_membarrier_backend>(); }
backend_entry epoch_fence_entry() { return make_backend_entry<epoch_fence_backend>(); }

}  // namespace hotswap::stress
