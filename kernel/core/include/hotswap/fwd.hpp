// Every public name of the core layer, once: a map of its API. The core's
// names are in hotswap, its internals in hotswap::detail. The modules layer
// (<hotswap/module/module.hpp>, hotswap::modules) and the watch layer
// (<hotswap/watch.hpp>, hotswap::watch) sit above it, each with a detail
// namespace of its own, and open with their own maps.
#pragma once

#include <cstdint>

#include "grace_policy.hpp"  // the concept basic_domain is declared with

namespace hotswap {

// options.hpp: tunables
enum class grace_mode;         // automatic | membarrier | fence
enum class reclaim_mode;       // background | manual
struct domain_options;
struct slot_options;
enum class call_policy;         // per_call | pinned
struct stall_report;           // a reader stuck in a section, as reported

// domain.hpp / epoch_grace.hpp: a reclamation domain over a grace policy
// concept grace_policy      (grace_policy.hpp) what a policy provides
template <class Grace> class basic_domain;  // Grace: a grace_policy  // lock/unlock, synchronize, retire, barrier, poll
class epoch_grace;             // the default policy: epoch announce + lazy membarrier
using domain = basic_domain<epoch_grace>;
class qsbr_grace;              // qsbr_grace.hpp: free read sections, threads announce quiescent()
using qsbr_domain = basic_domain<qsbr_grace>;
struct retired_node;           // intrusive retire node (retire.hpp)
struct grace_stats;            // grace_stats.hpp: a policy's counters
struct reclaim_stats;

// slot.hpp / pin.hpp / version.hpp: swappable versions
template <class T, class Domain> class slot;  // call, read, pin, publish, publish_until, wait_for_room, compare_and_publish
template <class T, class Domain> class pin;   // one version kept alive across calls
struct version_info;           // number, label, creation time
struct version_status;         // live version with serving flag and pin count
struct publish_result;         // status + version number
enum class publish_status;     // published | backpressure | conflict

// unique_fd.hpp: a file descriptor that closes itself (also the layers' above)
class unique_fd;

}  // namespace hotswap
