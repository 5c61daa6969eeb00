// The payload's body lives in its own translation unit: no caller can inline
// or devirtualise it, whatever the optimiser knows (no LTO in this build).
#include "common.hpp"

namespace hotswap_bench {

handler::~handler() = default;

int plugin::handle(int x) const noexcept { return x + k; }

}  // namespace hotswap_bench
