// The Prometheus counters of the process this one replaced (an upgrade), so
// that every counter continues instead of starting again from zero: a
// scraper's rate() sees no reset.
//
// The old process sends its /metrics text (once with its state, and again
// when it is done, with what it served while handing over); the counters and histograms in it
// (not the gauges: open connections are the new process's own) are added to
// the same series of ours at every scrape, and series we no longer have (a
// version that served only there) are shown with their final values.
//
//   carried_counters c;
//   c.load(old_metrics_text);
//   std::string text = c.add_to(our_metrics_text);
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace hotswap::http::detail {

class carried_counters {
 public:
  /// Keeps the counter and histogram samples of an exposition (format 0.0.4),
  /// in place of any kept before. Thread-safe with add_to().
  void load(std::string_view exposition);
  /// `exposition` with the kept values added to its samples of the same
  /// series, and the kept series it lacks appended to their family.
  std::string add_to(std::string_view exposition) const;

 private:
  struct family {
    std::string type, help;
    std::map<std::string, double> samples;  // "name{labels}" -> value
  };
  mutable std::mutex mutex_;
  std::map<std::string, family> families_;
};

}  // namespace hotswap::http::detail
