// What the example applications share: string views over the C request and a
// writer over the C response (app_api.h). Plugin side only; header-only.
#pragma once

#include <charconv>
#include <string_view>

#include <hotswap/http/app_api.h>

#ifndef APP_VERSION
#define APP_VERSION 1
#endif
#define APP_STRINGIFY2(x) #x
#define APP_STRINGIFY(x) APP_STRINGIFY2(x)

namespace app {

inline std::string_view method(const hotswap_http_request& r) { return {r.method, r.method_size}; }
inline std::string_view target(const hotswap_http_request& r) { return {r.target, r.target_size}; }
inline std::string_view body(const hotswap_http_request& r) { return {r.body, r.body_size}; }

/// The value of `key` in the target's query string ("/slow?ms=200"), or "".
inline std::string_view query_param(std::string_view target, std::string_view key) {
  const auto q = target.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    const auto eq = pair.find('=');
    if (pair.substr(0, eq) == key) return eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    if (amp == std::string_view::npos) break;
    rest = rest.substr(amp + 1);
  }
  return {};
}

/// A non-negative integer, or `fallback` when absent or malformed.
inline long parse_number(std::string_view text, long fallback) {
  long v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  return ec == std::errc{} && end == text.data() + text.size() && v >= 0 ? v : fallback;
}

/// Writes through the server's response functions.
class writer {
 public:
  explicit writer(const hotswap_http_response& r) noexcept : r_(r) {}
  void status(int s) const { r_.set_status(r_.context, s); }
  void header(std::string_view name, std::string_view value) const {
    r_.add_header(r_.context, name.data(), name.size(), value.data(), value.size());
  }
  void append(std::string_view data) const { r_.append_body(r_.context, data.data(), data.size()); }
  void reply(int s, std::string_view content_type, std::string_view data) const {
    status(s);
    header("Content-Type", content_type);
    append(data);
  }
  void complete() const { r_.complete(r_.context); }

 private:
  hotswap_http_response r_;
};

}  // namespace app
