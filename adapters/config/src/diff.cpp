// A merge walk over two sorted maps.
#include "hotswap/config/diff.hpp"

namespace hotswap::config {

std::string change::to_string() const {
  switch (what) {
    case kind::added: return "+ " + key + " = " + to_toml_text(*after);
    case kind::removed: return "- " + key + " = " + to_toml_text(*before);
    case kind::changed: return "~ " + key + " = " + to_toml_text(*before) + " -> " + to_toml_text(*after);
  }
  return {};
}

std::vector<change> diff(const snapshot& before, const snapshot& after) {
  std::vector<change> out;
  auto b = before.values().begin();
  auto a = after.values().begin();
  const auto b_end = before.values().end();
  const auto a_end = after.values().end();
  while (b != b_end || a != a_end) {
    if (a == a_end || (b != b_end && b->first < a->first)) {
      out.push_back({b->first, change::kind::removed, b->second, std::nullopt});
      ++b;
    } else if (b == b_end || a->first < b->first) {
      out.push_back({a->first, change::kind::added, std::nullopt, a->second});
      ++a;
    } else {
      if (!(b->second == a->second)) out.push_back({a->first, change::kind::changed, b->second, a->second});
      ++a;
      ++b;
    }
  }
  return out;
}

}  // namespace hotswap::config
