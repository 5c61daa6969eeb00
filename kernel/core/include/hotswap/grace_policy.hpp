// The contract between basic_domain and a grace policy, as a concept.
//
// A policy decides how readers mark their sections and how a writer waits
// for the sections that began before it: epoch_grace (the default) in this
// layer; the test-only references (libcds URCU, std::shared_mutex) in
// tests/policies. Everything above the policy (retire, slot, pin) is written
// once against basic_domain, so a policy that meets this concept gets them all.
#pragma once

#include <concepts>
#include <cstdint>

namespace hotswap {

struct domain_options;
struct grace_stats;

/// What basic_domain relies on from a grace policy. `reader` is a thread's
/// record; lock()/unlock() must nest and must never wait for a writer.
/// synchronize() returns once every section that began before the call has
/// ended. The policy registers a thread at its first this_thread_reader() and
/// releases it at thread exit or detach_this_thread().
template <class G>
concept grace_policy = std::constructible_from<G, const domain_options&> &&
    requires(G& g, const G& cg, typename G::reader& r) {
      r.lock();
      r.unlock();
      { r.nesting() } -> std::convertible_to<std::uint32_t>;
      { g.this_thread_reader() } -> std::same_as<typename G::reader&>;
      { g.this_thread_reader_if_any() } -> std::same_as<typename G::reader*>;
      g.detach_this_thread();
      g.synchronize();
      { cg.stats() } -> std::same_as<grace_stats>;
    };

}  // namespace hotswap
