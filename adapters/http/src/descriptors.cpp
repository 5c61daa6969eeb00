#include <sys/resource.h>

#include <algorithm>
#include <filesystem>

#include "descriptors.hpp"

namespace hotswap::http::detail {

std::size_t connection_cap(std::size_t& limit) {
  rlimit rl{};
  constexpr std::size_t unlimited = std::size_t{1} << 20;  // what "unlimited" is taken to be
  limit = ::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
              ? static_cast<std::size_t>(std::min<rlim_t>(rl.rlim_cur, unlimited))
              : unlimited;
  std::size_t open_now = 0;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec)) ++open_now;
  const std::size_t keep = open_now + std::max<std::size_t>(64, limit / 8);
  return limit > keep ? limit - keep : 1;
}

}  // namespace hotswap::http::detail
