// UTF-8 checking for the text a sink writes: file names and plugin messages
// are bytes, but JSON and the Prometheus text format carry UTF-8 only.
//
// utf8_sequence() measures the well-formed sequence at a position, or the
// "maximal subpart" of an ill-formed one (Unicode 15, section 3.9, U+FFFD
// substitution): each ill-formed subpart becomes one U+FFFD. nlohmann-json's
// error_handler_t::replace follows the same rule, so a name reads back the
// same from every sink. Overlong forms, surrogates and code points above
// U+10FFFF are ill-formed.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace hotswap {

/// The UTF-8 encoding of U+FFFD REPLACEMENT CHARACTER.
inline constexpr std::string_view replacement_character = "\xEF\xBF\xBD";

struct utf8_span {
  std::size_t length;  ///< bytes from the position: the sequence, or the ill-formed subpart (at least 1)
  bool valid;          ///< a whole well-formed sequence
};

/// The sequence starting at `s[i]` (i < s.size()).
inline utf8_span utf8_sequence(std::string_view s, std::size_t i) noexcept {
  const auto lead = static_cast<unsigned char>(s[i]);
  if (lead < 0x80) return {1, true};
  std::size_t need;                   // continuation bytes after the lead
  unsigned char low = 0x80, high = 0xBF;  // the range allowed for the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    need = 1;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    need = 2;
    if (lead == 0xE0) low = 0xA0;   // overlong
    if (lead == 0xED) high = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    need = 3;
    if (lead == 0xF0) low = 0x90;   // overlong
    if (lead == 0xF4) high = 0x8F;  // above U+10FFFF
  } else {
    return {1, false};  // a continuation byte, C0/C1 (overlong) or F5..FF
  }
  std::size_t n = 1;
  for (; n <= need; ++n) {
    if (i + n >= s.size()) return {n, false};
    const auto c = static_cast<unsigned char>(s[i + n]);
    if (c < (n == 1 ? low : 0x80) || c > (n == 1 ? high : 0xBF)) return {n, false};
  }
  return {n, true};
}

/// `s` with each ill-formed subpart replaced by U+FFFD.
inline std::string valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const utf8_span seq = utf8_sequence(s, i);
    if (seq.valid) out += s.substr(i, seq.length);
    else out += replacement_character;
    i += seq.length;
  }
  return out;
}

}  // namespace hotswap
