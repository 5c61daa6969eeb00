// The content hash is XXH64 (seed 0): values checked against `xxhsum -H1`.
#include <gtest/gtest.h>

#include <cstddef>
#include <string>

#include <hotswap/watch/xxh64.hpp>

namespace {

using hotswap::watch::xxh64;

// 1000 bytes: ' ' + i % 90, the file the reference values were taken from.
std::string pattern_1000() {
  std::string s;
  for (int i = 0; i < 1000; ++i) s.push_back(static_cast<char>(32 + i % 90));
  return s;
}

TEST(watch_hash, matches_xxhsum_reference_values) {
  EXPECT_EQ(xxh64::of(""), 0xef46db3751d8e999ULL);
  EXPECT_EQ(xxh64::of("a"), 0xd24ec4f1a98c6e5bULL);
  EXPECT_EQ(xxh64::of("abc"), 0x44bc2cf5ad770999ULL);
  EXPECT_EQ(xxh64::of(std::string(100, '\0')), 0x17bb1103c92c502fULL);
  EXPECT_EQ(xxh64::of(pattern_1000()), 0x3620535e9a6ff2dbULL);
}

TEST(watch_hash, any_split_into_pieces_gives_the_same_value) {
  const std::string text = pattern_1000();
  const std::uint64_t whole = xxh64::of(text);
  for (std::size_t piece : {1U, 3U, 7U, 31U, 32U, 33U, 64U, 999U}) {
    hotswap::watch::xxh64 h;
    for (std::size_t at = 0; at < text.size(); at += piece) h.update(std::string_view(text).substr(at, piece));
    EXPECT_EQ(h.digest(), whole) << "pieces of " << piece;
  }
}

}  // namespace
