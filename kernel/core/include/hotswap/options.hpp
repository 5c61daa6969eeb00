// Tunables of a reclamation domain and of a slot, in one place.
//
// Every field says when to change it. Defaults are chosen from measurements on
// a 2-core AMD EPYC VM (see results/), not guessed.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <sys/types.h>

namespace hotswap {

/// How a grace period learns that readers have left their sections.
enum class grace_mode {
  /// membarrier if the kernel offers MEMBARRIER_CMD_PRIVATE_EXPEDITED, else fence.
  automatic,
  /// Readers pay a compiler barrier only; the writer issues membarrier() for
  /// readers that did not show the new epoch within `membarrier_after`.
  /// Constructing a domain in this mode throws if membarrier is unavailable.
  membarrier,
  /// Readers pay a full fence when they enter a section; the writer never
  /// interrupts them. For kernels or sandboxes without membarrier.
  fence,
};

/// Who runs deleters of retired objects.
enum class reclaim_mode {
  /// A background thread owned by the domain (the default).
  background,
  /// Nobody, until the host calls domain::poll() or domain::barrier(): for hosts
  /// that want no extra thread and drive reclamation from their own loop.
  manual,
};

/// A reader that stayed inside one read section for longer than
/// domain_options::stall_threshold while a grace period waited for it.
struct stall_report {
  pid_t thread_id;                  ///< kernel thread id (gettid) of the reader
  std::chrono::nanoseconds waited;  ///< how long the grace period has waited so far
};

struct domain_options {
  grace_mode grace = grace_mode::automatic;
  reclaim_mode reclaim = reclaim_mode::background;

  /// How long a grace period polls for busy readers to show the new epoch
  /// before it pays one membarrier() for the rest (idle or blocked readers).
  /// Lower it when most registered threads are idle; raise it if membarrier
  /// IPIs disturb callers. 20 us covers a busy caller's section many times over.
  std::chrono::nanoseconds membarrier_after = std::chrono::microseconds(20);

  /// How long the background reclaimer lets retires accumulate before it pays
  /// one grace period for all of them. Every grace period costs each busy
  /// caller two cache misses (the epoch line, and its own record line after
  /// the writer polled it); a window shares them among every swap inside it.
  /// Retire-to-reclaim latency grows by up to the window. barrier() cuts it
  /// short. Lower it (0 = start at once) when memory must come back sooner;
  /// raise it for swap rates above ~10 kHz.
  std::chrono::nanoseconds reclaim_window = std::chrono::microseconds(200);

  /// Whether the background reclaimer runs under SCHED_BATCH (if it would
  /// otherwise run under SCHED_OTHER; a real-time or idle policy it inherits is
  /// left alone). A batch thread that wakes never preempts a running one: it
  /// runs at the next tick or on an idle CPU. When callers keep every CPU busy
  /// its rounds then take turns with them instead of cutting into their calls,
  /// and a writer that fills slot_options::max_draining waits for room rather
  /// than take the CPU they need. On idle CPUs nothing changes. Measured with
  /// 2 callers on 2 cores (results/cheap-swaps.md): caller p99.99 from about 2x
  /// liburcu's to a fraction of it, calls/s and swaps/s kept. Turn it off when
  /// memory must come back at once on a saturated machine.
  bool batch_reclaimer = true;

  /// A reader inside one section for longer than this is reported through
  /// on_stall (once per grace period). It only delays reclamation.
  std::chrono::nanoseconds stall_threshold = std::chrono::milliseconds(100);

  /// Called on the thread that waits for the grace period (the reclaimer, or a
  /// caller of synchronize()). Must not enter the domain. Empty: not reported.
  /// Only policies that can see one reader's section report: epoch_grace does;
  /// the test-only references (libcds URCU, std::shared_mutex) wait inside a
  /// library call that cannot name the reader, and never call it.
  std::function<void(const stall_report&)> on_stall;
};

/// How a caller reaches a slot's versions. per_call: every call sees the
/// newest version (a read section per call). pinned: a session (a connection,
/// a transaction) takes a pin when it starts and keeps that version to its end.
enum class call_policy { per_call, pinned };

struct slot_options {
  /// Cap on versions that were replaced but are not destroyed yet (waiting for
  /// a grace period or for their pins). Past it, publish() answers
  /// publish_status::backpressure instead of growing memory without bound
  /// (publish_until() waits for room instead, up to a deadline).
  /// Raise it for workloads with many long-lived pins on old versions. At
  /// least 1: a slot constructed with 0 throws std::invalid_argument.
  std::size_t max_draining = 16;

  /// Number of pin counter shards per version (rounded up to a power of two).
  /// Threads pick a shard by a per-thread index, so pins taken on different
  /// threads do not write one shared cache line. 0 = one per hardware thread,
  /// at most 64. Each shard is one cache line per live version.
  std::size_t pin_shards = 0;
};

}  // namespace hotswap
