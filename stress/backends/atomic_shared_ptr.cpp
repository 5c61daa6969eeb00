#include "atomic_shared_ptr.hpp"

#include "../registry.hpp"
#include "../rig.hpp"

namespace hotswap::stress {

backend_entry atomic_shared_ptr_entry() { return make_backend_entry<atomic_shared_ptr_backend>(); }

}  // namespace hotswap::stress
