// Backends: the mechanisms the rig compares, each a small adapter.
//
// A backend is a class template over the scenario's version type V:
//
//   template <class V> class B {
//     static constexpr std::string_view name, description;
//     static constexpr std::string_view tsan_note;  // non-empty: why the backend
//                                            // is left out of `all` under TSan
//     B(const backend_config&, run_probe&, V initial);
//     class caller {                         // one per caller thread, made on it
//       explicit caller(B&);
//       template <class F> void call(F&& f); // one read section: f(const V&)
//       session pin();                       // keep one version for many calls
//     };
//     // session: movable, `const V& operator*()`, `reset()` ends it
//     void attach_writer(); void detach_writer();  // on each swapper thread
//     bool publish(V&& next);                // false = refused (backpressure),
//                                            // `next` left untouched
//     std::size_t backlog() const;           // replaced versions not destroyed
//     std::size_t cap() const;               // configured cap on it, 0 = none
//     backend_stats stats() const;           // counters since construction
//     void drain();                          // every retired version reclaimed
//     void wait_for_room();                  // optional: after a refusal, sleep
//                                            // until a publish could succeed (or
//                                            // a bounded time); without it the
//                                            // swapper sleeps 20 us and retries
//   };
//
// Swappers call publish() one at a time (the rig serialises them so version
// numbers follow publish order). A backend that can observe its grace periods
// reports each to run_probe::grace_begin()/grace_end(), which also raises the
// age floor the callers check.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>

#include "probe.hpp"

namespace hotswap::stress {

struct backend_config {
  std::size_t max_draining = 16;  ///< cap on replaced-but-alive versions (slot_options::max_draining)
  std::int64_t membarrier_after_ns = -1;  ///< epoch backends: domain_options::membarrier_after; -1 = default
};

struct backend_stats {
  std::int64_t grace_periods = -1;  ///< -1: not observable for this backend
  std::int64_t membarriers = -1;    ///< counted by the mechanism itself; -1: it does not count
};

template <class B, class V>
concept backend = requires(B& b, const B& cb, typename B::caller& c, V&& v) {
  { B::name } -> std::convertible_to<std::string_view>;
  { B::description } -> std::convertible_to<std::string_view>;
  { B::tsan_note } -> std::convertible_to<std::string_view>;
  { b.publish(std::move(v)) } -> std::same_as<bool>;
  { cb.backlog() } -> std::convertible_to<std::size_t>;
  { cb.cap() } -> std::convertible_to<std::size_t>;
  { cb.stats() } -> std::same_as<backend_stats>;
  b.attach_writer();
  b.detach_writer();
  b.drain();
  c.call([](const V&) {});
  { *c.pin() } -> std::same_as<const V&>;
  c.pin().reset();
};

}  // namespace hotswap::stress
