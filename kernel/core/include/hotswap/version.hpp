// What a slot tells about its versions.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace hotswap {

/// Identity of one published version. Numbers increase by one per publish on
/// a slot and are never reused, so "newer" is simply "larger".
struct version_info {
  std::uint64_t number = 0;
  std::string label;
  std::chrono::system_clock::time_point created;
};

enum class publish_status {
  published,
  /// Too many replaced versions are still draining (slot_options::max_draining).
  backpressure,
  /// compare_and_publish: the serving version was not the expected one.
  conflict,
};

/// What publish() answers. [[nodiscard]]: a refused publish must be handled
/// (retry later, publish_until(), or report), never dropped silently.
struct [[nodiscard]] publish_result {
  publish_status status;
  /// On success the new version's number; otherwise the serving version's.
  std::uint64_t version;
  explicit operator bool() const noexcept { return status == publish_status::published; }
};

/// One live version as seen by slot::versions().
struct version_status {
  version_info info;
  bool serving;         ///< the slot's current version
  std::uint64_t pins;   ///< pins held now (snapshot)
};

}  // namespace hotswap
