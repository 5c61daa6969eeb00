// TOML (toml++) to a flat, checked snapshot; and a snapshot back to TOML.
#include "hotswap/config/loader.hpp"

#include "flat_key.hpp"
#include "parse.hpp"
#include "pre_lex.hpp"
#include "toml_values.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

namespace hotswap::config {

namespace {

/// The first failure ends a load; thrown inside this file only.
struct failure {
  config_error error;
};

/// Walks a parsed document into flat dotted keys. The walk keeps its own
/// stack (no recursion) and a budget for the bytes of the keys it builds:
/// each key repeats its tables' names, so a deep header over many short keys
/// would otherwise cost memory quadratic in the file's size.
class flattener {
 public:
  flattener(std::string file, const schema* rules, std::size_t key_budget)
      : file_(std::move(file)), rules_(rules), key_budget_(key_budget) {}

  // What the walk found.
  snapshot::map values;
  std::optional<std::uint64_t> history_major;
  key_positions positions;

  void walk(const toml::table& root) {
    // Tables and flattened arrays still to expand, with their flat keys.
    std::vector<std::pair<const toml::node*, std::string>> work{{&root, std::string()}};
    while (!work.empty()) {
      const auto [container, prefix] = std::move(work.back());
      work.pop_back();
      if (const auto* t = container->as_table()) {
        for (auto&& [k, node] : *t) {
          if (prefix.empty() && k.str() == history_major_key) {
            history_key(node);
            continue;
          }
          const std::string name = detail::key_name(k.str());
          entry(node, prefix.empty() ? name : prefix + "." + name, k.source(), work);
        }
      } else {
        const toml::array& a = *container->as_array();
        for (std::size_t i = 0; i < a.size(); ++i)
          entry(a[i], prefix + "[" + std::to_string(i) + "]", a[i].source(), work);
      }
    }
  }

 private:
  /// One key and its node: a value, or a table or array to expand later.
  void entry(const toml::node& node, std::string full, const toml::source_region& at,
             std::vector<std::pair<const toml::node*, std::string>>& work) {
    if (full.size() > key_budget_)
      fail(at, "the dotted keys of this file are too long (over " + std::to_string(key_budget_ + key_bytes_) +
                   " bytes in all)");
    key_budget_ -= full.size();
    key_bytes_ += full.size();
    const bool table = node.is_table();
    const bool expand = table || (node.is_array() && !plain_list(*node.as_array()));
    // A table's own position only matters to a schema (a validator may
    // name a section); without one, only values are located.
    if (!expand || rules_ != nullptr) positions.emplace(full, std::pair{at.begin.line, at.begin.column});
    if (rules_ == nullptr) {
      if (expand) {
        work.emplace_back(&node, std::move(full));
      } else {
        values.emplace(full, natural(node));
      }
    } else if (const key_rule* rule = rules_->rule_for(full)) {
      values.emplace(full, typed(node, *rule, full, at));
    } else if ((table || node.is_array()) && rules_->is_section(full)) {
      work.emplace_back(&node, std::move(full));
    } else {
      fail(at, std::string("unknown ") + (table ? "table" : "key") + " '" + full + "'");
    }
  }

  /// An array held as one value: empty, or all strings, or all integers.
  static bool plain_list(const toml::array& a) {
    return a.empty() || a.is_homogeneous(toml::node_type::string) || a.is_homogeneous(toml::node_type::integer);
  }

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

  /// Without a schema: the value's own type (any but a table or an array
  /// that is not a plain list, which the walk expands).
  static value natural(const toml::node& n) {
    if (const auto* s = n.as_string()) return s->get();
    if (const auto* i = n.as_integer()) return i->get();
    if (const auto* f = n.as_floating_point()) return f->get();
    if (const auto* b = n.as_boolean()) return b->get();
    if (const auto* a = n.as_array()) {
      std::vector<std::string> strings;
      std::vector<std::int64_t> integers;
      for (const toml::node& e : *a) {
        if (const auto* s = e.as_string()) strings.push_back(s->get());
        if (const auto* i = e.as_integer()) integers.push_back(i->get());
      }
      if (a->empty() || !strings.empty()) return strings;
      return integers;
    }
    return detail::datetime_of(n);
  }

  /// With a schema: the rule's type, or an error naming both types.
  /// `key_at`: where the key was written (a misplaced key is reported there).
  value typed(const toml::node& n, const key_rule& rule, const std::string& key,
              const toml::source_region& key_at) const {
    const auto wrong = [&](const toml::node& at) {
      // Under a map any name is allowed, so a value of another type is most
      // likely a key written in the wrong section (a typo), not a bad entry.
      if (rule.is_map && &at == &n)
        fail(key_at, std::string("unknown ") + (n.is_table() ? "table" : "key") + " '" + key + "' (the entries of '" +
                              rule.key + "' are of type " + to_string(rule.type) + "; this is a " + describe(at) + ")");
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
      case value_type::date_time:
        if (n.is_date() || n.is_time() || n.is_date_time()) return detail::datetime_of(n);
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
  std::size_t key_budget_;     // bytes of dotted keys still allowed
  std::size_t key_bytes_ = 0;  // bytes of dotted keys built
};

config_error at(const std::string& file, const key_positions& where, const std::string& key, std::string reason) {
  config_error e{file, 1, 1, std::move(reason)};
  if (const auto it = where.find(key); it != where.end()) {
    e.line = it->second.first;
    e.column = it->second.second;
  }
  return e;
}

/// The element prefix of `key` that an element rule's pattern `elements`
/// (up to and including its last "[]") names: servers[2].host and
/// servers[] give servers[2]; nullopt when `key` is not under it.
std::optional<std::string> element_of(const std::string& key, std::string_view elements) {
  std::size_t k = 0, p = 0;  // positions in key and in the pattern
  while (p < elements.size() && k < key.size()) {
    if (elements.substr(p, 2) == "[]" && key[k] == '[') {
      const auto close = key.find(']', k);
      if (close == std::string::npos) return std::nullopt;
      k = close + 1;
      p += 2;
    } else if (key[k] == elements[p]) {
      ++k;
      ++p;
    } else {
      return std::nullopt;
    }
  }
  if (p != elements.size() || (k < key.size() && key[k] != '.' && key[k] != '[')) return std::nullopt;
  return key.substr(0, k);
}

/// Defaults and required keys of the elements of arrays of tables: each
/// element present gets its defaults; one missing a required key is refused.
std::optional<config_error> complete_elements(snapshot::map& values, const key_rule& rule, const key_positions& where,
                                              const std::string& file) {
  const std::string_view elements = std::string_view(rule.key).substr(0, rule.key.rfind("[]") + 2);
  std::set<std::string> present;
  for (const auto& [key, v] : values)
    if (auto e = element_of(key, elements)) present.insert(std::move(*e));
  for (const auto& e : present) {
    const std::string key = e + rule.key.substr(elements.size());
    if (values.contains(key)) continue;
    if (rule.default_value) {
      values.emplace(key, *rule.default_value);
    } else if (rule.required) {
      return at(file, where, e, "missing required key '" + key + "' (" + to_string(rule.type) + ")");
    }
  }
  return std::nullopt;
}

/// toml++'s node for a value.
std::unique_ptr<toml::node> node_of(const value& v) {
  switch (type_of(v)) {
    case value_type::boolean: return std::make_unique<toml::value<bool>>(std::get<bool>(v));
    case value_type::integer: return std::make_unique<toml::value<std::int64_t>>(std::get<std::int64_t>(v));
    case value_type::floating: return std::make_unique<toml::value<double>>(std::get<double>(v));
    case value_type::string: return std::make_unique<toml::value<std::string>>(std::get<std::string>(v));
    case value_type::string_list: {
      auto a = std::make_unique<toml::array>();
      for (const auto& s : std::get<std::vector<std::string>>(v)) a->push_back(s);
      return a;
    }
    case value_type::integer_list: {
      auto a = std::make_unique<toml::array>();
      for (const auto i : std::get<std::vector<std::int64_t>>(v)) a->push_back(i);
      return a;
    }
    case value_type::date_time: return detail::node_of(std::get<datetime>(v));
  }
  return nullptr;
}

/// A key as TOML writes it: bare, or a basic string. (toml++ 3.3.0's
/// formatter writes a key holding a line break or a tab bare, which is not
/// TOML: toml-test's valid/key/space and key/escapes; hence this writer.)
std::string toml_key(std::string_view name) {
  bool bare = !name.empty();
  for (const char c : name)
    bare = bare && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-');
  return bare ? std::string(name) : to_toml_text(value{std::string(name)});
}

bool is_array_of_tables(const toml::node& n) {
  const auto* a = n.as_array();
  return a != nullptr && !a->empty() && a->is_homogeneous(toml::node_type::table);
}

/// A value inline: arrays as [...], tables inside them as {...}. Its depth
/// is the snapshot's, which a file's pre_lex() or the schema bounds.
void write_inline(std::string& out, const toml::node& n) {
  if (const auto* t = n.as_table()) {
    out += '{';
    bool first = true;
    for (auto&& [k, v] : *t) {
      out += std::exchange(first, false) ? " " : ", ";
      out += toml_key(k.str()) + " = ";
      write_inline(out, v);
    }
    out += first ? "}" : " }";
  } else if (const auto* a = n.as_array()) {
    out += '[';
    for (std::size_t i = 0; i < a->size(); ++i) {
      if (i != 0) out += ", ";
      write_inline(out, (*a)[i]);
    }
    out += ']';
  } else if (const auto* s = n.as_string()) {
    out += to_toml_text(value{s->get()});
  } else if (const auto* i = n.as_integer()) {
    out += std::to_string(i->get());
  } else if (const auto* f = n.as_floating_point()) {
    out += to_toml_text(value{f->get()});
  } else if (const auto* b = n.as_boolean()) {
    out += b->get() ? "true" : "false";
  } else {
    out += detail::datetime_of(n).text;
  }
}

/// A table's values, then its tables ([path]) and arrays of tables ([[path]]).
void write_table(std::string& out, const toml::table& t, const std::string& path, bool element) {
  if (!path.empty()) out += (element ? "\n[[" : "\n[") + path + (element ? "]]\n" : "]\n");
  for (auto&& [k, v] : t) {
    if (v.is_table() || is_array_of_tables(v)) continue;
    out += toml_key(k.str()) + " = ";
    write_inline(out, v);
    out += '\n';
  }
  for (auto&& [k, v] : t) {
    const std::string sub = path.empty() ? toml_key(k.str()) : path + "." + toml_key(k.str());
    if (const auto* table = v.as_table()) {
      write_table(out, *table, sub, false);
    } else if (is_array_of_tables(v)) {
      for (const toml::node& e : *v.as_array()) write_table(out, *e.as_table(), sub, true);
    }
  }
}

/// Puts `v` at the flat key's place in `root`, making the tables and arrays
/// on the way (array slots not yet reached hold empty tables).
void place(toml::table& root, const std::string& key, const value& v) {
  const auto pieces = detail::split_key(key);
  toml::node* at = &root;
  for (std::size_t p = 0; p < pieces.size(); ++p) {
    const auto& piece = pieces[p];
    const bool last = p + 1 == pieces.size();
    // A slot's content: a table when more names follow, an array when more indices do.
    const auto make = [&](std::size_t remaining_indices) -> std::unique_ptr<toml::node> {
      if (remaining_indices > 0) return std::make_unique<toml::array>();
      if (!last) return std::make_unique<toml::table>();
      return node_of(v);
    };
    toml::table& table = *at->as_table();
    if (table.get(piece.name) == nullptr || (last && piece.indices.empty()))
      table.insert_or_assign(piece.name, std::move(*make(piece.indices.size())));
    at = table.get(piece.name);
    for (std::size_t i = 0; i < piece.indices.size(); ++i) {
      toml::array& array = *at->as_array();
      const std::size_t index = piece.indices[i];
      while (array.size() <= index) array.push_back(toml::table{});
      const std::size_t remaining = piece.indices.size() - i - 1;
      const bool wrong_kind = remaining > 0 ? !array[index].is_array() : !last ? !array[index].is_table() : true;
      if (wrong_kind) array.replace(array.cbegin() + static_cast<std::ptrdiff_t>(index), std::move(*make(remaining)));
      at = &array[index];
    }
  }
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
    if (rule.key.find("[]") != std::string::npos) {
      if (auto missing = complete_elements(values, rule, where, file)) return missing;
      continue;
    }
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

namespace detail {

std::optional<config_error> parse(std::string_view text, const std::string& file, const load_limits& limits,
                                  toml::table& root) {
  if (text.size() > limits.max_bytes)
    return config_error{file, 1, 1, "file is " + std::to_string(text.size()) + " bytes; the limit is " +
                                        std::to_string(limits.max_bytes)};
  lexed lex = pre_lex(text, file, limits.max_depth);
  if (lex.error) return std::move(lex.error);
  try {
    root = lex.to_escape.empty() ? toml::parse(text, file) : toml::parse(with_escapes(text, lex.to_escape), file);
  } catch (const toml::parse_error& e) {
    return config_error{file, e.source().begin.line, e.source().begin.column, std::string(e.description())};
  } catch (const tomlpp_check_failed& e) {
    return config_error{file, 1, 1, std::string("not read: ") + e.what() + " (somewhere in the file)"};
  }
  return std::nullopt;
}

}  // namespace detail

load_result load(std::string_view text, std::string file, const schema* rules, load_limits limits) {
  load_result result;
  toml::table root;
  if (auto error = detail::parse(text, file, limits, root)) {
    result.error = std::move(*error);
    return result;
  }
  try {
    flattener walk(file, rules, limits.key_bytes_per_byte * text.size() + limits.key_bytes_slack);
    walk.walk(root);
    if (rules != nullptr) {
      if (auto error = check_and_complete(walk.values, *rules, walk.positions, file)) throw failure{std::move(*error)};
    }
    result.doc = document{snapshot(std::move(walk.values)), walk.history_major, std::move(walk.positions)};
  } catch (const failure& f) {
    result.error = f.error;
  }
  return result;
}


namespace {

/// Whether `p` is `dir` or lies below it (both absolute and normal).
bool within(const std::filesystem::path& p, const std::filesystem::path& dir) {
  auto [d, q] = std::mismatch(dir.begin(), dir.end(), p.begin(), p.end());
  return d == dir.end();
}

}  // namespace

file_read read_config(const std::filesystem::path& path, std::uint64_t max_bytes) {
  file_read out;
  out.error = {path.string(), 1, 1, {}};
  const auto refuse = [&](std::string reason) {
    out.error.reason = std::move(reason);
    return std::move(out);
  };
  // O_NONBLOCK: a FIFO planted here cannot hang the open before fstat says what it is.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return refuse(std::string("cannot open: ") + std::strerror(errno));
  const struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } close_it{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return refuse(std::string("cannot stat: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return refuse("not a regular file; not read");
  // Where the descriptor really is, against where the file's directory really is.
  std::error_code ec;
  const auto dir = std::filesystem::canonical(path.parent_path().empty() ? "." : path.parent_path(), ec);
  const auto real = std::filesystem::read_symlink("/proc/self/fd/" + std::to_string(fd), ec);
  if (ec || dir.empty()) return refuse("cannot tell where it really is; not read");
  if (!within(real, dir))
    return refuse("is a symlink to " + real.string() + ", outside its directory " + dir.string() +
                  "; not read (a configuration may link only to a file inside its directory)");
  out.access = file_access{st.st_mode & 0777, st.st_uid, st.st_gid};
  std::string text;
  char buffer[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return refuse(std::string("read error: ") + std::strerror(errno));
    if (n == 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
    if (text.size() > max_bytes) {
      text.resize(std::min<std::size_t>(head_bytes, max_bytes));
      out.head = std::move(text);
      return refuse("file is larger than the limit of " + std::to_string(max_bytes) + " bytes");
    }
  }
  out.text = std::move(text);
  return out;
}

std::optional<std::string> read_text(const std::filesystem::path& path, std::uint64_t max_bytes, config_error& error) {
  auto r = read_config(path, max_bytes);
  error = std::move(r.error);
  return std::move(r.text);
}

load_result load_file(const std::filesystem::path& path, const schema* rules, load_limits limits) {
  config_error error;
  auto text = read_text(path, limits.max_bytes, error);
  if (!text) return load_result{std::nullopt, std::move(error)};
  return load(*text, path.string(), rules, limits);
}

std::string to_toml(const snapshot& values, std::optional<std::uint64_t> history_major) {
  toml::table root;
  for (const auto& [key, v] : values.values()) place(root, key, v);
  std::string out;
  if (history_major) out += std::string(history_major_key) + " = " + std::to_string(*history_major) + "\n";
  write_table(out, root, "", false);
  return out;
}

}  // namespace hotswap::config
