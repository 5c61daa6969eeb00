// Reads a watched file to its end and hashes it (XXH64, xxh64.hpp): the
// content digest the change tracker compares, so a save that leaves the bytes
// as they were reloads nothing.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <span>
#include <system_error>

#include "../xxh64.hpp"

namespace hotswap::watch::detail {

/// Hash and length of everything readable from a descriptor.
struct content_digest {
  std::uint64_t hash = 0;
  std::uint64_t size = 0;
};

/// Reads `fd` to its end through `buffer`. Gives up with
/// errc::operation_canceled as soon as `*stop` turns true (a huge file must not
/// hold up a watcher that is being destroyed).
inline std::error_code digest_fd(int fd, std::span<std::byte> buffer, const std::atomic<bool>* stop,
                                 content_digest& out) {
  xxh64 hasher;
  std::uint64_t size = 0;
  for (;;) {
    if (stop != nullptr && stop->load(std::memory_order_relaxed))
      return std::make_error_code(std::errc::operation_canceled);
    const ssize_t got = ::read(fd, buffer.data(), buffer.size());
    if (got < 0) {
      if (errno == EINTR) continue;
      return {errno, std::system_category()};
    }
    if (got == 0) break;
    hasher.update(buffer.first(static_cast<std::size_t>(got)));
    size += static_cast<std::uint64_t>(got);
  }
  out = {hasher.digest(), size};
  return {};
}

}  // namespace hotswap::watch::detail
