// Every backend the rig can run, in the order `--backend all` runs them. A
// kernel scenario that runs on all of them instantiates this list in its own
// source file (scenarios/memory.cpp).
//
// Adding one: write backends/NAME.hpp after backend.hpp's contract and list
// its template here.
#pragma once

#include "../rig.hpp"
#include "atomic_shared_ptr.hpp"
#include "broken.hpp"
#include "kernel_domains.hpp"
#include "urcu_memb.hpp"

namespace hotswap::stress {

using all_backends_list = backend_list<epoch_membarrier_backend,  // hotswap::domain as shipped: the default
                                       epoch_fence_backend,       //
                                       qsbr_backend,              // callers announce every 1,000 calls
                                       cds_urcu_backend,          //
                                       urcu_memb_sync_backend,    //
                                       urcu_memb_call_rcu_backend,
                                       shared_mutex_backend,      //
                                       atomic_shared_ptr_backend,
                                       broken_backend>;           // self-test of the checks, never in `all`

}  // namespace hotswap::stress
