// hotswap's slot over libcds's general_buffered URCU (cds_urcu_domain).
#include <policies.hpp>

#include "../registry.hpp"
#include "../rig.hpp"
#include "hotswap_slot.hpp"

namespace hotswap::stress {
namespace {

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

}  // namespace

backend_entry cds_urcu_entry() { return make_backend_entry<cds_urcu_backend>(); }

}  // namespace hotswap::stress
