// Every public name of the kernel, once: a map of the API.
#pragma once

#include <cstdint>

namespace hotswap {

// options.hpp: tunables
enum class grace_mode;         // automatic | membarrier | fence
enum class reclaim_mode;       // background | manual
struct domain_options;
struct slot_options;
struct stall_report;           // a reader stuck in a section, as reported

// domain.hpp / *_grace.hpp: reclamation domains, one set of verbs
template <class Grace> class basic_domain;  // lock/unlock, synchronize, retire, barrier, poll
class epoch_grace;             // default: epoch announce + lazy membarrier
class shared_mutex_grace;      // reference policy (std::shared_mutex)
class cds_urcu_grace;          // libcds general_buffered URCU (cds_urcu_grace.hpp)
using domain = basic_domain<epoch_grace>;
template <class Reader> class read_section;  // RAII read section
struct retired_node;           // intrusive retire node (retire.hpp)
struct grace_stats;
struct reclaim_stats;

// slot.hpp / pin.hpp / version.hpp: swappable versions
template <class T, class Domain> class slot;  // call, read, pin, publish, compare_and_publish
template <class T, class Domain> class pin;   // one version kept alive across calls
struct version_info;           // number, label, creation time
struct version_status;         // live version with serving flag and pin count
struct publish_result;         // status + version number
enum class publish_status;     // published | backpressure | conflict

// watch.hpp: change detection on a directory (inotify, polling fallback)
class watcher;                 // debounced, content-hashed change events
struct watch_options;
enum class watch_mode;         // automatic | inotify | poll
struct file_change;            // path, kind, content hash, size, mtime
enum class change_kind;        // changed | removed

}  // namespace hotswap
