// hotswap's reference policy: a read section is a std::shared_mutex shared
// lock, a grace period takes it exclusively once.
#include <policies.hpp>

#include "../registry.hpp"
#include "../rig.hpp"
#include "hotswap_slot.hpp"

namespace hotswap::stress {
namespace {

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

}  // namespace

backend_entry shared_mutex_entry() { return make_backend_entry<shared_mutex_backend>(); }

}  // namespace hotswap::stress
