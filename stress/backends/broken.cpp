#include "broken.hpp"

#include "../registry.hpp"
#include "../rig.hpp"

namespace hotswap::stress {

backend_entry broken_entry() { return make_backend_entry<broken_backend>(); }

}  // namespace hotswap::stress
