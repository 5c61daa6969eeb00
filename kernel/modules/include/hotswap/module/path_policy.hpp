// The loader's path rule, for hosts that check their own paths the same way
// (a watched folder that must lie inside the plugin directory): a path is
// inside a directory when the directory's components are a proper prefix of
// its own. Lexical: resolve both first (realpath, weakly_canonical), as the
// loader does before it compares.
//
//   if (dir != allowed && !hotswap::modules::path_within(dir, allowed)) refuse();
#pragma once

#include <algorithm>
#include <filesystem>
#include <iterator>

namespace hotswap::modules {

/// Whether `p` lies strictly under `dir`.
inline bool path_within(const std::filesystem::path& p, const std::filesystem::path& dir) {
  auto [d, q] = std::mismatch(dir.begin(), dir.end(), p.begin(), p.end());
  // "a/b/" iterates to a trailing empty element: ignore it.
  return (d == dir.end() || (std::next(d) == dir.end() && d->empty())) && q != p.end();
}

}  // namespace hotswap::modules
