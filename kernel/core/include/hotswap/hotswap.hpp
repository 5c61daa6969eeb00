// hotswap: replace code and configuration in a running process without losing
// a call. Include this for the whole core layer (fwd.hpp names every type it
// declares); the modules and watch layers have their own headers.
//
// One plugin call, three ways (costs measured on a 2-core EPYC VM, see
// results/bench-kernel.md for the current numbers):
//
//   1. A shared mutex: correct, but every call writes the lock's cache line.
//        std::shared_lock lock(mutex); plugin->handle(req);
//   2. A raw atomic pointer: as fast as a plain call, but the old plugin can
//      never be freed safely, so it must leak (or crash a caller).
//        current.load(std::memory_order_acquire)->handle(req);
//   3. A hotswap slot: (2) plus a read section (an epoch load and two stores to
//      the caller's own cache line; measured 1.22x a plain virtual call), and
//      the old version is shut down after the last call inside it returned.
//        handlers.call(reader, [&](const plugin& p) { return p.handle(req); });
#pragma once

#include "fwd.hpp"
#include "domain.hpp"
#include "epoch_grace.hpp"
#include "grace_policy.hpp"
#include "options.hpp"
#include "pin.hpp"
#include "qsbr_grace.hpp"
#include "retire.hpp"
#include "slot.hpp"
#include "version.hpp"
