// Writing and reading flat keys (see flat_key.hpp).
#include "flat_key.hpp"

#include <charconv>

#include "hotswap/config/value.hpp"

namespace hotswap::config::detail {

namespace {

/// Calls visit(i) for each '.' separating names, and returns nothing; quoted
/// names are skipped over (a '.' or '[' inside one is part of the name).
template <class F>
void each_separator(std::string_view key, F&& visit) {
  bool quoted = false;
  for (std::size_t i = 0; i < key.size(); ++i) {
    if (quoted && key[i] == '\\') {
      ++i;
    } else if (key[i] == '"') {
      quoted = !quoted;
    } else if (!quoted && key[i] == '.') {
      visit(i);
    }
  }
}

/// Appends the UTF-8 encoding of `cp`.
void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

/// The name a quoted piece spells (the escapes to_toml_text() writes).
std::string unquote(std::string_view q) {
  std::string out;
  for (std::size_t i = 0; i < q.size(); ++i) {
    if (q[i] != '\\' || i + 1 >= q.size()) {
      out += q[i];
      continue;
    }
    const char e = q[++i];
    const std::size_t hex = e == 'u' ? 4 : e == 'U' ? 8 : 0;
    if (hex != 0 && i + hex < q.size()) {
      std::uint32_t cp = 0;
      std::from_chars(q.data() + i + 1, q.data() + i + 1 + hex, cp, 16);
      append_utf8(out, cp);
      i += hex;
    } else {
      out += e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e == 'b' ? '\b' : e == 'f' ? '\f' : e;
    }
  }
  return out;
}

}  // namespace

std::string key_name(std::string_view name) {
  if (!name.empty() && name.find_first_of(".\"[]") == std::string_view::npos) return std::string(name);
  return to_toml_text(value{std::string(name)});
}

std::vector<key_piece> split_key(std::string_view key) {
  std::vector<key_piece> out;
  std::size_t start = 0;
  const auto piece = [&](std::string_view text) {
    key_piece p;
    std::size_t end = text.size();
    if (!text.empty() && text[0] == '"') {  // the closing quote: the first one not escaped
      std::size_t i = 1;
      while (i < text.size() && text[i] != '"') i += text[i] == '\\' ? 2 : 1;
      p.name = unquote(text.substr(1, std::min(i, text.size()) - 1));
      end = std::min(i + 1, text.size());
    } else {
      end = std::min(text.find('['), text.size());
      p.name = std::string(text.substr(0, end));
    }
    for (std::size_t i = end; i < text.size() && text[i] == '[';) {
      std::size_t index = 0;
      const auto [next, ec] = std::from_chars(text.data() + i + 1, text.data() + text.size(), index);
      if (ec != std::errc{}) break;
      p.indices.push_back(index);
      i = static_cast<std::size_t>(next - text.data()) + 1;
    }
    out.push_back(std::move(p));
  };
  each_separator(key, [&](std::size_t dot) {
    piece(key.substr(start, dot - start));
    start = dot + 1;
  });
  piece(key.substr(start));
  return out;
}

std::string pattern_of(std::string_view key) {
  std::string out;
  bool quoted = false;
  for (std::size_t i = 0; i < key.size(); ++i) {
    const char c = key[i];
    out += c;
    if (quoted && c == '\\' && i + 1 < key.size()) {
      out += key[++i];
    } else if (c == '"') {
      quoted = !quoted;
    } else if (!quoted && c == '[') {
      while (i + 1 < key.size() && key[i + 1] >= '0' && key[i + 1] <= '9') ++i;
    }
  }
  return out;
}

std::string_view parent_of(std::string_view key) {
  std::size_t last = std::string_view::npos;
  each_separator(key, [&](std::size_t dot) { last = dot; });
  return last == std::string_view::npos ? std::string_view() : key.substr(0, last);
}

}  // namespace hotswap::config::detail
