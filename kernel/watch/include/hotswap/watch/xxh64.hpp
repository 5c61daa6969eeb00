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
// The implementation is xxHash's own (Debian libxxhash-dev); XXH_INLINE_ALL
// compiles it into the including file, so this layer stays header-only and
// links nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#ifndef XXH_INLINE_ALL
#define XXH_INLINE_ALL
#endif
#include <xxhash.h>

namespace hotswap::watch {

/// XXH64 over bytes that arrive in pieces: update() any number of times, then
/// digest(). Same value as hashing the concatenation in one go.
class xxh64 {
 public:
  explicit xxh64(std::uint64_t seed = 0) noexcept { XXH64_reset(&state_, seed); }

  void update(std::span<const std::byte> bytes) noexcept { XXH64_update(&state_, bytes.data(), bytes.size()); }
  void update(std::string_view text) noexcept { XXH64_update(&state_, text.data(), text.size()); }

  /// The digest of `text` in one go.
  static std::uint64_t of(std::string_view text) noexcept { return XXH64(text.data(), text.size(), 0); }

  std::uint64_t digest() const noexcept { return XXH64_digest(&state_); }

 private:
  XXH64_state_t state_;
};

}  // namespace hotswap::watch
