// The lexical pass before toml++ (see pre_lex.hpp).
//
// It follows just enough of the grammar to know what toml++ reads as a
// string, a comment, a key or a value: '#' to the line end; "..." and
// """...""" with backslash escapes; '...' and '''...''' without; a multi-line
// closing run may carry up to two more quotes of content. A quote opens a
// string only where a key or a value starts (at a line start, after '=', '[',
// '{', ',', or a dotted key's '.'); inside a bare token (x = 1979-05-27T'...)
// toml++ reads it as part of the token, and so does this scan. An
// unterminated single-line string ends at its line end (toml++ then reports
// it). Columns count characters, as toml++'s do.
#include "pre_lex.hpp"

#include "toml.hpp"

#include <cstdio>
#include <vector>

namespace hotswap::config::detail {

namespace {

/// The code point of the UTF-8 sequence at text[i], or nothing if it is not
/// valid UTF-8 there (toml++ reports invalid UTF-8 inside strings itself).
std::optional<char32_t> utf8_at(std::string_view text, std::size_t i) {
  const auto u = static_cast<unsigned char>(text[i]);
  const std::size_t n = u >= 0xf0 ? 4 : u >= 0xe0 ? 3 : u >= 0xc2 ? 2 : 0;
  if (n == 0 || u > 0xf4 || i + n > text.size()) return std::nullopt;
  char32_t cp = u & (0x7fu >> n);
  for (std::size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(text[i + k]);
    if ((b & 0xc0) != 0x80) return std::nullopt;
    cp = (cp << 6) | (b & 0x3fu);
  }
  const char32_t least = n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
  if (cp < least || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return std::nullopt;
  return cp;
}

}  // namespace

std::optional<config_error> scan(std::string_view text, const std::string& file, std::uint32_t max_depth,
                                 std::vector<std::size_t>& to_escape) {
  enum class state { code, comment, basic, literal, multi_basic, multi_literal };
  state in = state::code;
  bool value = false;  // code: a value is expected or being read, not a key
  bool opens = true;   // code: a quote here starts a string
  std::string nest;    // open '[' of a table header ('h'), arrays '[' and inline tables '{'
  std::vector<std::uint32_t> depths;  // per `nest` entry: an array's depth, an inline table's key's depth
  std::uint32_t header_depth = 0;     // parts of the last table header: where its keys start
  std::uint32_t parts = 1;            // parts of the dotted key or header being read
  std::uint32_t value_depth = 0;      // depth of the value being read
  bool escaped = false;   // basic strings: the previous byte was a backslash
  bool trimming = false;  // multi-line basic: after a line-ending backslash, before the next text
  std::uint32_t line = 1, column = 1;
  const auto run_of = [&](std::size_t i, char quote) {
    std::size_t n = 0;
    while (i + n < text.size() && text[i + n] == quote) ++n;
    return n;
  };
  const auto end_line = [&] {
    if (!nest.empty() && nest.back() == '[') return;  // only arrays span lines
    nest.clear();
    depths.clear();
    value = false;
    opens = true;
    parts = 1;
  };
  // Where the key being read starts: below the table header, or below the
  // key that holds the inline table it is in.
  const auto key_base = [&]() -> std::uint32_t {
    if (nest.empty()) return header_depth;
    return nest.back() == '{' ? depths.back() : 0;
  };
  const auto too_deep = [&](std::uint32_t depth) -> std::optional<config_error> {
    if (depth <= max_depth) return std::nullopt;
    return config_error{file, line, column,
                        "nested deeper than " + std::to_string(max_depth) +
                            " levels (each part of a dotted key or table header, each array and inline table is one)"};
  };
  // toml++ up to 3.4.0 needs a key character first in a table header (toml.hpp).
  const auto header_key_start = [&](std::size_t at) -> std::optional<config_error> {
    if (!tomlpp_header_key_unchecked) return std::nullopt;
    if (nest.empty() && at + 1 < text.size() && text[at + 1] == '[') return std::nullopt;  // '[[': the next '[' checks
    std::size_t k = at + 1;
    while (k < text.size() && (text[k] == ' ' || text[k] == '\t')) ++k;
    const char first = k < text.size() ? text[k] : '\0';
    const bool key = (first >= 'a' && first <= 'z') || (first >= 'A' && first <= 'Z') || (first >= '0' && first <= '9') ||
                     first == '_' || first == '-' || first == '"' || first == '\'';
    if (key) return std::nullopt;
    return config_error{file, line, static_cast<std::uint32_t>(column + (k - at)),
                        "a table header must start with a key (a letter, digit, '_', '-' or a quote)"};
  };
  // toml++ 3.3.0 reads a 10-character token shaped like YYYY-MM-DD followed by
  // 'T', or by a space and a digit, as a date-time and then assumes a
  // well-formed time (TOML_ASSERT_ASSUME in parse_time() and parse_value();
  // found by the config_loader fuzz target once assertions were on):
  // "1979-05-27T$7:32", "1979-05-27 5", "197;-0=-[[ 7". Its token is what
  // parse_value() scans: from the value's first character to a value
  // terminator (whitespace, ']', '}', ',', '#'), so '=', '[' and quotes inside
  // it count; '_' does not, and it scans at most 127 characters. Valid TOML
  // has a time there, so only invalid input is refused. Before a space, the
  // rescan also steps back over everything it read, and toml++'s reader keeps
  // only 127 characters to step back over (TOML_ASSERT_ASSUME in step_back(),
  // a noexcept function: parser.inl:568): a date-shaped token padded with '_'
  // to 125 or more is refused too, as any '_' in a date is.
  std::size_t token = std::string_view::npos;  // code: where the bare value being read starts
  std::uint32_t token_column = 0;
  const auto digit_at = [&](std::size_t k) { return k < text.size() && text[k] >= '0' && text[k] <= '9'; };
  const auto time_after_date = [&](std::size_t t) -> std::optional<config_error> {
    if (token == std::string_view::npos || t - token > 127 || !digit_at(token)) return std::nullopt;
    std::size_t n = 0;
    for (std::size_t k = token; k < t; ++k) {
      if (text[k] == '_') continue;
      if ((n == 4 || n == 7) && text[k] != '-') return std::nullopt;
      ++n;
    }
    if (n != 10) return std::nullopt;
    if (text[t] == ' ' && t - token != 10)
      return config_error{file, line, token_column, "a date cannot contain '_' (it would be read as a date-time)"};
    if (text[t] == ' ') {  // a date alone, or a time after the space: then HH:
      if (!digit_at(t + 1) || (digit_at(t + 2) && t + 3 < text.size() && text[t + 3] == ':')) return std::nullopt;
      return config_error{file, line, column + 1, "a date-time needs a time (HH:MM:SS) after the space after its date"};
    }
    if (digit_at(t + 1)) return std::nullopt;
    return config_error{file, line, column + 1, "a date-time needs a time (HH:MM:SS) after its 'T'"};
  };
  // TOML 1.0 allows a byte order mark first; toml++ skips it, columns start after it.
  std::size_t i = text.starts_with("\xEF\xBB\xBF") ? 3 : 0;
  while (i < text.size()) {
    const char c = text[i];
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t' && c != '\n' && c != '\r') || u == 0x7f) {
      char code[8];
      std::snprintf(code, sizeof code, "U+%04X", u);
      return config_error{file, line, column, std::string("control character ") + code + " is not allowed in TOML"};
    }
    // First after a line-ending backslash: valid, but toml++ 3.3.0 passes it
    // to the whitespace check; the copy it parses has it as an escape.
    const bool escape_it = u >= 0x80 && trimming && !escaped && utf8_at(text, i);
    if (escape_it) to_escape.push_back(i);
    const char* where = in == state::code ? "outside a string or comment (TOML keys and values are ASCII)"
                        : escaped         ? "after a backslash (not a TOML escape)"
                        : trimming        ? "first after a line-ending backslash"
                                          : nullptr;
    if (u >= 0x80 && where != nullptr && !escape_it) {
      char what[40];
      if (const auto cp = utf8_at(text, i))
        std::snprintf(what, sizeof what, "non-ASCII character U+%04X", static_cast<unsigned>(*cp));
      else
        std::snprintf(what, sizeof what, "byte 0x%02X (not UTF-8)", u);
      return config_error{file, line, column, std::string(what) + " " + where};
    }
    const char top = nest.empty() ? '\0' : nest.back();
    std::size_t width = 1;  // bytes this step consumes: more only for a run of quotes
    if (in == state::code) {
      if (c == '"' || c == '\'') {
        if (opens) {
          const bool multi = run_of(i, c) >= 3;
          in = c == '"' ? (multi ? state::multi_basic : state::basic) : (multi ? state::multi_literal : state::literal);
          width = multi ? 3 : 1;
        }
        opens = false;
      } else if (c == '#') {
        in = state::comment;
      } else if (c == '\n') {
        end_line();
      } else if (c == ' ' || c == '\t' || c == '\r') {
        // separates tokens; a quote after a finished key or value is still not a string
        if (c == ' ') {
          if (auto e = time_after_date(i)) return e;
        }
      } else if (c == '=' && !value) {
        value_depth = key_base() + parts;
        if (auto e = too_deep(value_depth)) return e;
        value = opens = true;
      } else if (c == '.' && !value) {
        if (auto e = too_deep(key_base() + ++parts)) return e;
        opens = true;
      } else if (c == '[' && opens && (value || nest.empty() || nest == "h")) {
        if (value) {  // a value's array: one level below the value
          if (auto e = too_deep(++value_depth)) return e;
          nest += '[';
          depths.push_back(value_depth);
        } else {  // a table header's '[' or '[['
          if (auto e = header_key_start(i)) return e;
          nest += 'h';
          depths.push_back(0);
          parts = 1;
        }
      } else if (c == '{' && opens && value) {
        nest += '{';
        depths.push_back(value_depth);
        value = false;
        parts = 1;
      } else if (c == ',' && (top == '[' || top == '{')) {
        value = top == '[';
        opens = true;
        if (top == '[') value_depth = depths.back();
        parts = 1;
      } else if ((c == ']' && (top == '[' || top == 'h')) || (c == '}' && top == '{')) {
        if (top == 'h') header_depth = parts;
        nest.pop_back();
        depths.pop_back();
        value = true;
        opens = false;
      } else if (c == '}' && top == '[') {
        // toml++ 3.3.0 passes it to parse_value(), which assumes a value
        // starts there (TOML_ASSERT_ASSUME; config_loader fuzz target).
        return config_error{file, line, column, "'}' inside an array: expected a value, ',' or ']'"};
      } else {
        if (value && opens) token = i, token_column = column;
        if (c == 'T' || c == 't') {
          if (auto e = time_after_date(i)) return e;
        }
        opens = false;  // a bare token, or a character toml++ refuses
      }
      if (std::string_view(" \t\r\n]},#").find(c) != std::string_view::npos) token = std::string_view::npos;
    } else if (in == state::comment) {
      if (c == '\n') in = state::code, end_line();
    } else if (escaped) {
      escaped = false;
      trimming = in == state::multi_basic && (c == ' ' || c == '\t' || c == '\r' || c == '\n');
      if (c == '\n' && in == state::basic) in = state::code, end_line();
    } else if (trimming && (c == ' ' || c == '\t' || c == '\r' || c == '\n')) {
      // still trimming
    } else {
      trimming = false;
      if (c == '\n') {
        if (in == state::basic || in == state::literal) in = state::code, end_line();
      } else if ((in == state::basic || in == state::multi_basic) && c == '\\') {
        escaped = true;
      } else if ((in == state::basic && c == '"') || (in == state::literal && c == '\'')) {
        in = state::code;
      } else if ((in == state::multi_basic && c == '"') || (in == state::multi_literal && c == '\'')) {
        width = run_of(i, c);
        if (width >= 3) {
          in = state::code;
          width = std::min<std::size_t>(width, 5);  // up to two quotes of content, then the closing three
        }
      }
    }
    for (const std::size_t end = i + width; i < end; ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else if ((static_cast<unsigned char>(text[i]) & 0xc0) != 0x80) {
        ++column;  // not a UTF-8 continuation byte: a new character
      }
    }
  }
  return std::nullopt;
}

lexed pre_lex(std::string_view text, const std::string& file, std::uint32_t max_depth) {
  lexed out;
  out.error = scan(text, file, max_depth, out.to_escape);
  return out;
}

std::string with_escapes(std::string_view text, const std::vector<std::size_t>& at) {
  std::string out;
  out.reserve(text.size() + at.size() * 10);
  std::size_t from = 0;
  for (const std::size_t i : at) {
    const auto u = static_cast<unsigned char>(text[i]);
    const std::size_t n = u >= 0xf0 ? 4 : u >= 0xe0 ? 3 : 2;  // pre_lex() checked it is UTF-8
    char escape[16];
    std::snprintf(escape, sizeof escape, "\\U%08X", static_cast<unsigned>(*utf8_at(text, i)));
    out.append(text.substr(from, i - from)).append(escape);
    from = i + n;
  }
  return out.append(text.substr(from));
}

}  // namespace hotswap::config::detail
