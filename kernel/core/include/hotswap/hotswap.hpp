// hotswap: replace code and configuration in a running process without losing
// a call. Include this for the whole core layer (fwd.hpp names every type it
// declares): the headers it includes are the layer's public API, and only
// those; detail/ is hotswap::detail. The modules and watch layers have their
// own umbrella headers (<hotswap/module/module.hpp>, <hotswap/watch.hpp>).
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
//      the caller's own cache line), and
//      the old version is shut down after the last call inside it returned.
//        handlers.call(reader, [&](const plugin& p) { return p.handle(req); });
#pragma once

#include "fwd.hpp"
#include "domain.hpp"
#include "epoch_grace.hpp"
#include "grace_policy.hpp"
#include "grace_stats.hpp"
#include "options.hpp"
#include "pin.hpp"
#include "qsbr_grace.hpp"
#include "retire.hpp"
#include "slot.hpp"
#include "unique_fd.hpp"
#include "utf8.hpp"
#include "version.hpp"
