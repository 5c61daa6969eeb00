// Compiled, never linked, by the CTest kernel.discarded_publish_is_diagnosed:
// the swap a new user writes first, a publish whose answer is dropped, must
// draw a diagnostic (publish_result is [[nodiscard]]), because a refused
// publish (backpressure) would otherwise pass unnoticed (issue #20).
#include <hotswap/slot.hpp>

void swap_without_looking(hotswap::slot<int>& handlers) { handlers.publish(2, "v2"); }
