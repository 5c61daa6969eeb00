// Will the process still have mappings to spare after this load?
//
// Linux caps a process's memory mappings at vm.max_map_count (65,530 by
// default). Each loadable segment of a plugin or dependency becomes at least
// one mapping (ld.so may split one for RELRO or .bss: we count two), and
// mappings of retained versions never come back. A process at the cap cannot
// malloc a large block, start a thread or posix_spawn. So before dlopen: the
// mappings in use now (/proc/self/maps; far from the limit, a reading of the
// last second: see map_budget_problem) plus the load's must leave `reserve`
// free. If either file cannot be read the check is skipped.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <string>

#include <hotswap/unique_fd.hpp>

namespace hotswap::modules::detail {

/// Lines in a /proc file (newlines counted), or nullopt if it cannot be read.
inline std::optional<std::uint64_t> proc_lines(const char* path, std::string* first_line = nullptr) {
  hotswap::unique_fd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  std::uint64_t lines = 0;
  char buf[16384];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) return std::nullopt;
    if (n == 0) return lines;
    if (first_line != nullptr && lines == 0) first_line->append(buf, static_cast<std::size_t>(n));
    for (ssize_t i = 0; i < n; ++i) lines += buf[i] == '\n';
  }
}

/// The last reading of the two files, shared by every loader of the process.
struct map_count_reading {
  std::uint64_t limit = 0, in_use = 0;
  std::uint64_t added = 0;  ///< mappings counted for loads passed since the reading
  std::chrono::steady_clock::time_point at{};
};

/// Why loading `segments` more loadable segments would leave fewer than
/// `reserve` mappings free, or nullopt.
///
/// Reading /proc/self/maps costs the kernel a line per mapping (~1 us each,
/// a few hundred us in a server): a large share of a swap. So a reading
/// younger than `fresh_for` is reused while it, plus every load passed since,
/// plus this one, leaves the reserve AND half of vm.max_map_count free: that
/// half covers whatever else the process mapped meanwhile. Nearer the limit,
/// every load reads afresh.
inline std::optional<std::string> map_budget_problem(std::uint64_t segments, std::uint64_t reserve,
                                                     std::chrono::nanoseconds fresh_for = std::chrono::seconds(1)) {
  static std::mutex mutex;
  static map_count_reading last;
  std::lock_guard lock(mutex);
  const auto now = std::chrono::steady_clock::now();
  const std::uint64_t wanted = 2 * segments;
  if (last.limit != 0 && now - last.at < fresh_for &&
      last.in_use + last.added + wanted + reserve + last.limit / 2 <= last.limit) {
    last.added += wanted;
    return std::nullopt;
  }
  std::string limit_text;
  if (!proc_lines("/proc/sys/vm/max_map_count", &limit_text)) return std::nullopt;
  const std::uint64_t limit = std::strtoull(limit_text.c_str(), nullptr, 10);
  const auto in_use = proc_lines("/proc/self/maps");
  if (limit == 0 || !in_use) return std::nullopt;
  last = {limit, *in_use, 0, now};
  const std::uint64_t after = *in_use + wanted;
  if (after + reserve <= limit) {
    last.added = wanted;
    return std::nullopt;
  }
  return "mapping limit: the process uses " + std::to_string(*in_use) + " of vm.max_map_count " +
         std::to_string(limit) + " mappings; this load's " + std::to_string(segments) +
         " loadable segments would leave fewer than loader_options::map_count_reserve (" + std::to_string(reserve) +
         ") free";
}

}  // namespace hotswap::modules::detail
