// The configuration converted once per version into the program's own struct,
// served through a slot of its own: a hot path then reads typed fields with
// one slot call and no key lookups.
//
//   hotswap::config::typed_view<httpd_settings> settings(cfg, domain, httpd_settings::from);
//   settings.call([&](const httpd_settings& s) { return s.limits.max_connections; });
//
// The conversion runs on the store's writer thread right after each publish
// (it must not throw for a snapshot the schema accepted). Destroy the view
// before the store.
#pragma once

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
    id_ = source_.subscribe([this](const snapshot& now, const std::vector<change>&) { slot_.publish(convert_(now)); },
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

 private:
  store& source_;
  convert_fn convert_;
  hotswap::slot<T> slot_;
  std::uint64_t id_ = 0;
};

}  // namespace hotswap::config
