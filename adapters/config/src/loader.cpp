// TOML (toml++) to a flat, checked snapshot; and a snapshot back to TOML.
#include "toml.hpp"

#include "hotswap/config/loader.hpp"

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
  // TOML allows no raw control characters but tab and line ends. Refusing
  // them here also keeps them from toml++ 3.3.0, whose parse_key() asserts on
  // a NUL after '[' (found by the config_loader fuzz target).
  std::uint32_t line = 1, column = 1;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t' && c != '\n' && c != '\r') || u == 0x7f) {
      char code[8];
      std::snprintf(code, sizeof code, "U+%04X", u);
      result.error = {file, line, column, std::string("control character ") + code + " is not allowed in TOML"};
      return result;
    }
    if (c == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
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
