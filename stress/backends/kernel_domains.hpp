// The kernel's domains as backends: the shipped policy in both reader modes,
// the qsbr flavour, and the test-only reference policies (tests/policies), each a slot over
// basic_domain<timed<Grace>> (hotswap_slot.hpp) with its name and options.
#pragma once

#include <hotswap/epoch_grace.hpp>
#include <hotswap/qsbr_grace.hpp>

#include <policies.hpp>

#include "hotswap_slot.hpp"

namespace hotswap::stress {

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

// Callers announce a quiescent state every 1,000 calls (hotswap_slot.hpp), as
// a host's event loop would once per iteration.
struct qsbr_traits {
  using grace = hotswap::qsbr_grace;
  static constexpr std::string_view name = "qsbr";
  static constexpr std::string_view description =
      "hotswap::qsbr_domain: free read sections, callers announce quiescent() every 1,000 calls";
  static constexpr std::string_view tsan_note = {};
  static constexpr bool counts_membarriers = false;
  static hotswap::domain_options options(const backend_config&) { return {}; }
};

template <class V>
using qsbr_backend = hotswap_slot_backend<V, qsbr_traits>;

struct cds_urcu_traits {
  using grace = hotswap::testing::cds_urcu::domain_type::grace_type;
  static constexpr std::string_view name = "cds-urcu";
  static constexpr std::string_view description =
      "hotswap::cds_urcu_domain: libcds general_buffered URCU read side and synchronize()";
  // libcds orders its readers against synchronize() with relaxed accesses
  // and std::atomic_thread_fence, which ThreadSanitizer does not model (g++
  // warns so with -Wtsan): TSan reports reclaims after its grace periods as races.
  static constexpr std::string_view tsan_note =
      "libcds's URCU orders readers and grace periods with atomic_thread_fence, which TSan does not model, so it reports reclaims as races";
  static constexpr bool counts_membarriers = false;
  static hotswap::domain_options options(const backend_config&) { return {}; }
};

template <class V>
using cds_urcu_backend = hotswap_slot_backend<V, cds_urcu_traits>;

struct shared_mutex_traits {
  using grace = hotswap::testing::shared_mutex_reference::domain_type::grace_type;
  static constexpr std::string_view name = "shared-mutex";
  static constexpr std::string_view description =
      "hotswap::shared_mutex_domain: std::shared_mutex shared lock per call, exclusive per grace period";
  static constexpr std::string_view tsan_note = {};
  static constexpr bool counts_membarriers = false;
  static hotswap::domain_options options(const backend_config&) { return {}; }
};

template <class V>
using shared_mutex_backend = hotswap_slot_backend<V, shared_mutex_traits>;

}  // namespace hotswap::stress
