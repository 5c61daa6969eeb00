// The content hash the watcher keeps per file: XXH64 (seed 0), streamed.
//
// A save that leaves the bytes as they were must not reload anything, so the
// watcher remembers a hash of each file's content and fires only when it
// differs. The hash needs to be fast (a plugin can be tens of MB and is hashed
// on every change) and to have 64 bits (a missed change needs a collision:
// ~2^-64 per edit); it does not need to resist an attacker, because it only
// decides *whether to look*: allow-listing a module by content is the
// loader's job, with SHA-256.
//
// XXH64 reads 32 bytes per round in four independent lanes, several GB/s on
// one core (FNV-1a, the simpler choice, goes one byte per multiply: about
// 1 GB/s). It is a published, stable algorithm, so the value a callback sees
// can be checked by hand: it equals `xxhsum -H1 FILE` (Debian package xxhash).
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <system_error>
#include <unistd.h>

namespace hotswap::watch::detail {

/// XXH64 over bytes that arrive in pieces: update() any number of times, then
/// digest(). Same value as hashing the concatenation in one go.
class xxh64 {
 public:
  explicit xxh64(std::uint64_t seed = 0) noexcept
      : lanes_{seed + prime1 + prime2, seed + prime2, seed, seed - prime1}, seed_(seed) {}

  void update(std::span<const std::byte> bytes) noexcept {
    const std::byte* p = bytes.data();
    std::size_t n = bytes.size();
    total_ += n;
    if (buffered_ != 0) {  // complete the stripe left over from the last update
      const std::size_t take = n < stripe - buffered_ ? n : stripe - buffered_;
      std::memcpy(buffer_.data() + buffered_, p, take);
      buffered_ += take;
      p += take;
      n -= take;
      if (buffered_ < stripe) return;
      consume_stripe(buffer_.data());
      buffered_ = 0;
    }
    for (; n >= stripe; p += stripe, n -= stripe) consume_stripe(p);
    std::memcpy(buffer_.data(), p, n);
    buffered_ = n;
  }

  void update(std::string_view text) noexcept { update(std::as_bytes(std::span(text.data(), text.size()))); }

  /// The digest of `text` in one go.
  static std::uint64_t of(std::string_view text) noexcept {
    xxh64 h;
    h.update(text);
    return h.digest();
  }

  std::uint64_t digest() const noexcept {
    std::uint64_t h;
    if (total_ >= stripe) {
      h = std::rotl(lanes_[0], 1) + std::rotl(lanes_[1], 7) + std::rotl(lanes_[2], 12) + std::rotl(lanes_[3], 18);
      for (std::uint64_t lane : lanes_) h = merge_lane(h, lane);
    } else {
      h = seed_ + prime5;
    }
    h += total_;
    const std::byte* p = buffer_.data();
    std::size_t n = buffered_;
    for (; n >= 8; p += 8, n -= 8) {
      h ^= round(0, load64(p));
      h = std::rotl(h, 27) * prime1 + prime4;
    }
    if (n >= 4) {
      h ^= static_cast<std::uint64_t>(load32(p)) * prime1;
      h = std::rotl(h, 23) * prime2 + prime3;
      p += 4;
      n -= 4;
    }
    for (; n > 0; ++p, --n) {
      h ^= static_cast<std::uint64_t>(std::to_integer<std::uint8_t>(*p)) * prime5;
      h = std::rotl(h, 11) * prime1;
    }
    h ^= h >> 33;
    h *= prime2;
    h ^= h >> 29;
    h *= prime3;
    h ^= h >> 32;
    return h;
  }

 private:
  static constexpr std::size_t stripe = 32;
  static constexpr std::uint64_t prime1 = 0x9E3779B185EBCA87ULL;
  static constexpr std::uint64_t prime2 = 0xC2B2AE3D27D4EB4FULL;
  static constexpr std::uint64_t prime3 = 0x165667B19E3779F9ULL;
  static constexpr std::uint64_t prime4 = 0x85EBCA77C2B2AE63ULL;
  static constexpr std::uint64_t prime5 = 0x27D4EB2F165667C5ULL;

  // XXH64 is defined over little-endian words.
  static std::uint64_t load64(const std::byte* p) noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, sizeof v);
    if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
    return v;
  }
  static std::uint32_t load32(const std::byte* p) noexcept {
    std::uint32_t v;
    std::memcpy(&v, p, sizeof v);
    if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap32(v);
    return v;
  }
  static std::uint64_t round(std::uint64_t acc, std::uint64_t input) noexcept {
    return std::rotl(acc + input * prime2, 31) * prime1;
  }
  static std::uint64_t merge_lane(std::uint64_t h, std::uint64_t lane) noexcept {
    return (h ^ round(0, lane)) * prime1 + prime4;
  }
  void consume_stripe(const std::byte* p) noexcept {
    for (std::size_t i = 0; i < lanes_.size(); ++i) lanes_[i] = round(lanes_[i], load64(p + 8 * i));
  }

  std::array<std::uint64_t, 4> lanes_;
  std::array<std::byte, stripe> buffer_{};
  std::size_t buffered_ = 0;
  std::uint64_t total_ = 0;
  std::uint64_t seed_;
};

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
