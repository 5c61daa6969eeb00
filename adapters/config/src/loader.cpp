// TOML (toml++) to a flat, checked snapshot; and a snapshot back to TOML.
#include "toml.hpp"

#include "hotswap/config/loader.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace hotswap::config {

namespace {

/// The first failure ends a load; thrown inside this file only.
struct failure {
  config_error error;
};

class flattener {
 public:
  flattener(std::string file, const schema* rules) : file_(std::move(file)), rules_(rules) {}

  // What the walk found.
  snapshot::map values;
  std::optional<std::uint64_t> history_major;
  key_positions positions;

  void table(const toml::table& t, const std::string& prefix) {
    for (auto&& [k, node] : t) {
      const std::string_view name = k.str();
      if (name.find('.') != std::string_view::npos)
        fail(k.source(), "key name \"" + std::string(name) + "\" contains '.'; names may not");
      const std::string full = prefix.empty() ? std::string(name) : prefix + "." + std::string(name);
      if (prefix.empty() && name == history_major_key) {
        history_key(node);
        continue;
      }
      positions.emplace(full, std::pair{k.source().begin.line, k.source().begin.column});
      if (rules_ == nullptr) {
        if (const auto* sub = node.as_table()) {
          table(*sub, full);
        } else {
          values.emplace(full, natural(node, full));
        }
        continue;
      }
      if (const key_rule* rule = rules_->rule_for(full)) {
        values.emplace(full, typed(node, *rule, full));
      } else if (node.is_table() && rules_->is_section(full)) {
        table(*node.as_table(), full);
      } else {
        fail(k.source(), std::string("unknown ") + (node.is_table() ? "table" : "key") + " '" + full + "'");
      }
    }
  }

 private:
  [[noreturn]] void fail(const toml::source_region& where, std::string reason) const {
    throw failure{config_error{file_, where.begin.line, where.begin.column, std::move(reason)}};
  }

  static const char* describe(const toml::node& n) {
    switch (n.type()) {
      case toml::node_type::table: return "table";
      case toml::node_type::array: return "array";
      case toml::node_type::string: return "string";
      case toml::node_type::integer: return "integer";
      case toml::node_type::floating_point: return "float";
      case toml::node_type::boolean: return "boolean";
      case toml::node_type::date: return "date";
      case toml::node_type::time: return "time";
      case toml::node_type::date_time: return "date-time";
      default: return "value";
    }
  }

  void history_key(const toml::node& n) {
    const auto* i = n.as_integer();
    if (i == nullptr || i->get() < 0)
      fail(n.source(), std::string(history_major_key) + " must be a non-negative integer (it is maintained by write-to-disk)");
    history_major = static_cast<std::uint64_t>(i->get());
  }

  /// Without a schema: the value's own type.
  value natural(const toml::node& n, const std::string& key) const {
    if (const auto* s = n.as_string()) return s->get();
    if (const auto* i = n.as_integer()) return i->get();
    if (const auto* f = n.as_floating_point()) return f->get();
    if (const auto* b = n.as_boolean()) return b->get();
    if (const auto* a = n.as_array()) {
      if (a->empty() || a->front().is_string()) return list_of<std::string>(*a, key);
      if (a->front().is_integer()) return list_of<std::int64_t>(*a, key);
    }
    fail(n.source(), "'" + key + "': unsupported value (a " + describe(n) +
                         "); values are booleans, integers, floats, strings and lists of strings or integers");
  }

  /// With a schema: the rule's type, or an error naming both types.
  value typed(const toml::node& n, const key_rule& rule, const std::string& key) const {
    const auto wrong = [&](const toml::node& at) {
      fail(at.source(), "'" + key + "' must be of type " + to_string(rule.type) + ", not " + describe(at));
    };
    switch (rule.type) {
      case value_type::boolean:
        if (const auto* b = n.as_boolean()) return b->get();
        break;
      case value_type::integer:
        if (const auto* i = n.as_integer()) return i->get();
        break;
      case value_type::floating:
        if (const auto* f = n.as_floating_point()) return f->get();
        if (const auto* i = n.as_integer()) return static_cast<double>(i->get());
        break;
      case value_type::string:
        if (const auto* s = n.as_string()) return s->get();
        break;
      case value_type::string_list:
        if (const auto* a = n.as_array()) return list_of<std::string>(*a, key);
        break;
      case value_type::integer_list:
        if (const auto* a = n.as_array()) return list_of<std::int64_t>(*a, key);
        break;
    }
    wrong(n);
    return {};
  }

  template <class T>
  std::vector<T> list_of(const toml::array& a, const std::string& key) const {
    std::vector<T> out;
    out.reserve(a.size());
    for (const toml::node& element : a) {
      const auto* v = element.as<T>();
      if (v == nullptr)
        fail(element.source(), "'" + key + "' must hold only " +
                                   (std::is_same_v<T, std::string> ? "strings" : "integers") + ", not " +
                                   describe(element));
      out.push_back(v->get());
    }
    return out;
  }

  std::string file_;
  const schema* rules_;
};

config_error at(const std::string& file, const key_positions& where, const std::string& key, std::string reason) {
  config_error e{file, 1, 1, std::move(reason)};
  if (const auto it = where.find(key); it != where.end()) {
    e.line = it->second.first;
    e.column = it->second.second;
  }
  return e;
}

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

/// A lexical pass before toml++ that refuses, with their position, what
/// toml++ 3.3.0 mishandles (all found by the config_loader fuzz target):
/// - raw control characters (TOML allows none but tab and line ends,
///   anywhere); toml++'s parse_key() asserts on a NUL after '[';
/// - any byte >= 0x80 outside strings and comments: TOML allows non-ASCII
///   only there (bare keys are [A-Za-z0-9_-]), and toml++ passes any
///   non-ASCII character it meets where a key, a value or the end of one
///   should be to a whitespace check that reaches TOML_UNREACHABLE
///   (" o\xc3\xb9 rt");
/// - for the same reason, a non-ASCII character right after a backslash in a
///   basic string, or first after a multi-line string's line-ending backslash.
/// It follows just enough of the grammar to know what toml++ reads as a
/// string or a comment: '#' to the line end; "..." and """...""" with
/// backslash escapes; '...' and '''...''' without; a multi-line closing run
/// may carry up to two more quotes of content. A quote opens a string only
/// where a key or a value starts (at a line start, after '=', '[', '{', ',',
/// or a dotted key's '.'); inside a bare token (x = 1979-05-27T'...) toml++
/// reads it as part of the token, and so does this scan. An unterminated
/// single-line string ends at its line end (toml++ then reports it). Columns
/// count characters, as toml++'s do.
std::optional<config_error> pre_lex(std::string_view text, const std::string& file) {
  enum class state { code, comment, basic, literal, multi_basic, multi_literal };
  state in = state::code;
  bool value = false;  // code: a value is expected or being read, not a key
  bool opens = true;   // code: a quote here starts a string
  std::string nest;    // open '[' of a table header ('h'), arrays '[' and inline tables '{'
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
    value = false;
    opens = true;
  };
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t' && c != '\n' && c != '\r') || u == 0x7f) {
      char code[8];
      std::snprintf(code, sizeof code, "U+%04X", u);
      return config_error{file, line, column, std::string("control character ") + code + " is not allowed in TOML"};
    }
    const char* where = in == state::code ? "outside a string or comment (TOML keys and values are ASCII)"
                        : escaped         ? "after a backslash (not a TOML escape)"
                        : trimming        ? "first after a line-ending backslash (toml++ cannot read it; escape it)"
                                          : nullptr;
    if (u >= 0x80 && where != nullptr) {
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
      } else if (c == '=' && !value) {
        value = opens = true;
      } else if (c == '.' && !value) {
        opens = true;
      } else if (c == '[' && opens && (value || nest.empty() || nest == "h")) {
        nest += value ? '[' : 'h';  // a value's array, or a table header's '[' or '[['
      } else if (c == '{' && opens && value) {
        nest += '{';
        value = false;
      } else if (c == ',' && (top == '[' || top == '{')) {
        value = top == '[';
        opens = true;
      } else if ((c == ']' && (top == '[' || top == 'h')) || (c == '}' && top == '{')) {
        nest.pop_back();
        value = true;
        opens = false;
      } else {
        opens = false;  // a bare token, or a character toml++ refuses
      }
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

/// Bare keys as they are; anything else quoted.
std::string key_segment(std::string_view name) {
  bool bare = !name.empty();
  for (const char c : name)
    bare = bare && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-');
  return bare ? std::string(name) : to_toml_text(value{std::string(name)});
}

}  // namespace

std::optional<config_error> check_and_complete(snapshot::map& values, const schema& rules, const key_positions& where,
                                               const std::string& file) {
  for (auto& [key, v] : values) {
    const key_rule* rule = rules.rule_for(key);
    if (rule == nullptr) return at(file, where, key, "unknown key '" + key + "'");
    if (rule->type == value_type::floating && type_of(v) == value_type::integer)
      v = static_cast<double>(std::get<std::int64_t>(v));
    if (type_of(v) != rule->type)
      return at(file, where, key,
                "'" + key + "' must be of type " + to_string(rule->type) + ", not " + to_string(type_of(v)));
    if (auto why = rule->check(v); !why.empty()) return at(file, where, key, "'" + key + "': " + why);
  }
  for (const key_rule& rule : rules.rules()) {
    if (rule.is_map || values.contains(rule.key)) continue;
    if (rule.default_value) {
      values.emplace(rule.key, *rule.default_value);
    } else if (rule.required) {
      return config_error{file, 1, 1, "missing required key '" + rule.key + "' (" + to_string(rule.type) + ")"};
    }
  }
  if (!rules.validators().empty()) {
    const snapshot candidate(values);
    for (const auto& validate : rules.validators()) {
      if (auto refused = validate(candidate)) {
        std::string reason = refused->key.empty() ? refused->reason : "'" + refused->key + "': " + refused->reason;
        return at(file, where, refused->key, std::move(reason));
      }
    }
  }
  return std::nullopt;
}

load_result load(std::string_view text, std::string file, const schema* rules, load_limits limits) {
  load_result result;
  if (text.size() > limits.max_bytes) {
    result.error = {file, 1, 1, "file is " + std::to_string(text.size()) + " bytes; the limit is " +
                                    std::to_string(limits.max_bytes)};
    return result;
  }
  if (auto error = pre_lex(text, file)) {
    result.error = std::move(*error);
    return result;
  }
  try {
    toml::table root;
    try {
      root = toml::parse(text, file);
    } catch (const toml::parse_error& e) {
      throw failure{config_error{file, e.source().begin.line, e.source().begin.column, std::string(e.description())}};
    }
    flattener walk(file, rules);
    walk.table(root, "");
    if (rules != nullptr) {
      if (auto error = check_and_complete(walk.values, *rules, walk.positions, file)) throw failure{std::move(*error)};
    }
    result.doc = document{snapshot(std::move(walk.values)), walk.history_major, std::move(walk.positions)};
  } catch (const failure& f) {
    result.error = f.error;
  }
  return result;
}


std::optional<std::string> read_text(const std::filesystem::path& path, std::uint64_t max_bytes, config_error& error) {
  error = {path.string(), 1, 1, {}};
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error.reason = std::string("cannot open: ") + std::strerror(errno);
    return std::nullopt;
  }
  std::string text;
  char buffer[65536];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    text.append(buffer, static_cast<std::size_t>(in.gcount()));
    if (text.size() > max_bytes) {
      error.reason = "file is larger than the limit of " + std::to_string(max_bytes) + " bytes";
      return std::nullopt;
    }
  }
  if (in.bad()) {
    error.reason = "read error";
    return std::nullopt;
  }
  return text;
}

load_result load_file(const std::filesystem::path& path, const schema* rules, load_limits limits) {
  config_error error;
  auto text = read_text(path, limits.max_bytes, error);
  if (!text) return load_result{std::nullopt, std::move(error)};
  return load(*text, path.string(), rules, limits);
}

std::string to_toml(const snapshot& values, std::optional<std::uint64_t> history_major) {
  // Group keys by their table (everything before the last '.'), top level first.
  std::map<std::string, std::vector<std::pair<std::string, const value*>>> tables;
  for (const auto& [key, v] : values.values()) {
    const auto dot = key.rfind('.');
    const std::string parent = dot == std::string::npos ? std::string() : key.substr(0, dot);
    tables[parent].emplace_back(dot == std::string::npos ? key : key.substr(dot + 1), &v);
  }
  std::ostringstream out;
  if (history_major) out << history_major_key << " = " << *history_major << "\n";
  for (const auto& [parent, entries] : tables) {
    if (!parent.empty()) {
      out << "\n[";
      std::string_view rest = parent;
      for (bool first = true;; first = false) {
        const auto dot = rest.find('.');
        out << (first ? "" : ".") << key_segment(rest.substr(0, dot));
        if (dot == std::string_view::npos) break;
        rest.remove_prefix(dot + 1);
      }
      out << "]\n";
    }
    for (const auto& [name, v] : entries) out << key_segment(name) << " = " << to_toml_text(*v) << "\n";
  }
  return out.str();
}

}  // namespace hotswap::config
