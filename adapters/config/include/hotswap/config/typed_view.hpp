// The configuration converted once per version into the program's own struct,
// served through a slot of its own: a hot path then reads typed fields with
// one slot call and no key lookups.
//
//   struct limits { std::int64_t max_connections; };
//   hotswap::config::typed_view<limits> settings(cfg, domain, [](const hotswap::config::snapshot& s) {
//     return limits{s.integer("limits.max_connections")};
//   });
//   settings.call([&](const limits& l) { return l.max_connections; });
//
// The conversion runs on the store's writer thread right after each publish
// (it must not throw for a snapshot the schema accepted). Destroy the view
// before the store.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <utility>

#include <hotswap/slot.hpp>

#include "store.hpp"

namespace hotswap::config {

template <class T>
class typed_view {
 public:
  using convert_fn = std::function<T(const snapshot&)>;

  typed_view(store& source, hotswap::domain& dom, convert_fn convert)
      : source_(source), convert_(std::move(convert)), slot_(dom, convert_(*source.read()), "initial") {
    // Replayed under the store's writer lock: a publish between the read
    // above and this registration is not missed.
    id_ = source_.subscribe(
        [this](const snapshot& now, const std::vector<change>&) {
          // Waits (bounded) for the view's replaced versions to drain rather
          // than drop a version of the configuration.
          if (!slot_.publish_until(convert_(now), std::chrono::steady_clock::now() + publish_wait))
            refused_.fetch_add(1, std::memory_order_relaxed);  // a statistic: no partner
        },
        true);
  }
  ~typed_view() { source_.unsubscribe(id_); }
  typed_view(const typed_view&) = delete;
  typed_view& operator=(const typed_view&) = delete;

  typename hotswap::slot<T>::read_ptr read() const { return slot_.read(); }
  template <class F>
  decltype(auto) call(F&& f) const {
    return slot_.call(std::forward<F>(f));
  }
  hotswap::pin<T, hotswap::domain> pin() const { return slot_.pin(); }

  /// Versions of the configuration the view could not take: its slot stayed
  /// at its draining cap for publish_wait. The view lags the store until a
  /// later version gets through.
  std::uint64_t refused() const noexcept { return refused_.load(std::memory_order_relaxed); }

 private:
  store& source_;
  convert_fn convert_;
  hotswap::slot<T> slot_;
  std::uint64_t id_ = 0;
  std::atomic<std::uint64_t> refused_{0};
  static constexpr std::chrono::seconds publish_wait{1};
};

}  // namespace hotswap::config
