// hotswap: replace code and configuration in a running process without losing
// a call. Include this for the whole kernel (policies over other libraries,
// like cds_urcu_grace.hpp, are included on their own).
//
// One plugin call, three ways (costs measured on a 2-core EPYC VM, see
// results/bench-kernel.md for the current numbers):
//
//   1. A shared mutex: correct, but every call writes the lock's cache line.
//        std::shared_lock lock(mutex); plugin->handle(req);
//   2. A raw atomic pointer: as fast as a plain call, but the old plugin can
//      never be freed safely, so it must leak (or crash a caller).
//        current.load(std::memory_order_acquire)->handle(req);
//   3. A hotswap slot: as fast as (2) on the call path, and the old version is
//      shut down after the last call inside it has returned.
//        handlers.call(reader, [&](const plugin& p) { return p.handle(req); });
#pragma once

#include "fwd.hpp"
#include "domain.hpp"
#include "epoch_grace.hpp"
#include "options.hpp"
#include "pin.hpp"
#include "retire.hpp"
#include "shared_mutex_grace.hpp"
#include "slot.hpp"
#include "version.hpp"
