// SQL names compare the way SQLite compares them: ASCII letters fold case and
// every other byte (UTF-8 included) must match exactly. std::tolower would
// fold by locale and is undefined for the negative chars of UTF-8 bytes.
#pragma once

#include <algorithm>
#include <string_view>

namespace hotswap::db::detail {

inline bool same_sql_name(std::string_view a, std::string_view b) noexcept {
  const auto fold = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [&](char x, char y) { return fold(x) == fold(y); });
}

}  // namespace hotswap::db::detail
