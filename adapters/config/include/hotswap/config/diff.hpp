// What changed between two snapshots, key by key: the structured diff that
// subscribers receive after a publish and that the CLI prints.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "value.hpp"

namespace hotswap::config {

struct change {
  enum class kind { added, removed, changed };
  std::string key;
  kind what = kind::changed;
  std::optional<value> before;  ///< empty when added
  std::optional<value> after;   ///< empty when removed

  /// "+ key = v", "- key = v" or "~ key = old -> new".
  std::string to_string() const;
  bool operator==(const change&) const = default;
};

/// Every key that differs, in key order.
std::vector<change> diff(const snapshot& before, const snapshot& after);

}  // namespace hotswap::config
