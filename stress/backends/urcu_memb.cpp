#include "urcu_memb.hpp"

#include "../registry.hpp"
#include "../rig.hpp"

namespace hotswap::stress {

backend_entry urcu_memb_sync_entry() { return make_backend_entry<urcu_memb_sync_backend>(); }
backend_entry urcu_memb_call_rcu_entry() { return make_backend_entry<urcu_memb_call_rcu_backend>(); }

}  // namespace hotswap::stress
