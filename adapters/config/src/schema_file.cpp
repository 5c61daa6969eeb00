// Schema descriptions in TOML: parsed with toml++, written by hand.
#include "hotswap/config/schema_file.hpp"

#include "parse.hpp"
#include "toml_values.hpp"

#include <cmath>
#include <sstream>

#include "hotswap/config/error.hpp"
#include "hotswap/config/loader.hpp"

namespace hotswap::config {

namespace {

[[noreturn]] void fail(const std::string& file, const toml::source_region& where, std::string reason) {
  throw config_exception({file, where.begin.line, where.begin.column, std::move(reason)});
}

value_type type_named(const std::string& file, const toml::node& n) {
  static const std::pair<const char*, value_type> names[] = {
      {"boolean", value_type::boolean},         {"integer", value_type::integer},
      {"float", value_type::floating},          {"string", value_type::string},
      {"string_list", value_type::string_list}, {"integer_list", value_type::integer_list},
      {"date_time", value_type::date_time}};
  if (const auto* s = n.as_string())
    for (const auto& [name, t] : names)
      if (s->get() == name) return t;
  fail(file, n.source(), "type must be one of boolean, integer, float, string, string_list, integer_list, date_time");
}

/// The default's TOML text loaded through the key's own rule: the same
/// conversions and errors as a configuration file.
value default_of(const std::string& file, const std::string& key, const toml::node& n, value_type t) {
  schema one;
  (void)one.map_of("v", t);
  std::ostringstream text;
  if (const auto* s = n.as_string()) {
    text << "v.d = " << to_toml_text(value{s->get()});
  } else if (const auto* i = n.as_integer()) {
    text << "v.d = " << i->get();
  } else if (const auto* f = n.as_floating_point()) {
    text << "v.d = " << to_toml_text(value{f->get()});
  } else if (const auto* b = n.as_boolean()) {
    text << "v.d = " << (b->get() ? "true" : "false");
  } else if (n.is_date() || n.is_time() || n.is_date_time()) {
    text << "v.d = " << detail::datetime_of(n).text;
  } else if (const auto* a = n.as_array()) {
    text << "v.d = [";
    for (std::size_t i = 0; i < a->size(); ++i) {
      const toml::node& e = *a->get(i);
      text << (i ? ", " : "");
      if (const auto* es = e.as_string()) {
        text << to_toml_text(value{es->get()});
      } else if (const auto* ei = e.as_integer()) {
        text << ei->get();
      } else {
        fail(file, e.source(), "default of '" + key + "': list elements must be strings or integers");
      }
    }
    text << "]";
  }
  auto loaded = load(text.str(), file, &one);
  if (!loaded) fail(file, n.source(), "default of '" + key + "' must be of type " + to_string(t));
  return *loaded.doc->values.find("v.d");
}

/// A bound as the rule's own type would write it: 1, not 1.0.
std::string number(double d) {
  if (std::fabs(d) < 9e15 && d == static_cast<double>(static_cast<std::int64_t>(d))) return std::to_string(static_cast<std::int64_t>(d));
  return to_toml_text(value{d});
}

void add_rules(schema& out, const std::string& file, const toml::table& section, bool maps) {
  for (auto&& [k, node] : section) {
    const std::string key(k.str());
    const auto* spec = node.as_table();
    if (spec == nullptr) fail(file, node.source(), "'" + key + "' must be a table of rules");
    const toml::node* type_node = spec->get("type");
    if (type_node == nullptr) fail(file, node.source(), "'" + key + "' has no type");
    const value_type t = type_named(file, *type_node);
    try {
      auto rule = maps ? out.map_of(key, t) : [&]() -> schema::rule_builder {
        switch (t) {
          case value_type::boolean: return out.boolean(key);
          case value_type::integer: return out.integer(key);
          case value_type::floating: return out.floating(key);
          case value_type::string: return out.string(key);
          case value_type::string_list: return out.string_list(key);
          case value_type::integer_list: return out.integer_list(key);
          case value_type::date_time: return out.date_time(key);
        }
        return out.string(key);
      }();
      for (auto&& [field, field_value] : *spec) {
        const std::string_view name = field.str();
        const toml::node& v = field_value;  // a lambda may not capture a structured binding in clang 14
        const auto number = [&]() -> double {
          if (const auto* i = v.as_integer()) return static_cast<double>(i->get());
          if (const auto* f = v.as_floating_point()) return f->get();
          fail(file, v.source(), std::string(name) + " must be a number");
        };
        if (name == "type") continue;
        if (name == "min") {
          rule.min(number());
        } else if (name == "max") {
          rule.max(number());
        } else if (name == "required" && v.is_boolean()) {
          if (v.as_boolean()->get()) rule.required();
        } else if (name == "default") {
          rule.default_to(default_of(file, key, v, t));
        } else if (name == "pattern" && v.is_string()) {
          rule.pattern(v.as_string()->get());
        } else if (name == "between" && v.is_array() && v.as_array()->size() == 2 &&
                   v.as_array()->is_homogeneous(toml::node_type::string)) {
          rule.between(v.as_array()->get(0)->as_string()->get(), v.as_array()->get(1)->as_string()->get());
        } else if (name == "doc" && v.is_string()) {
          rule.doc(v.as_string()->get());
        } else if (name == "one_of" && v.is_array()) {
          std::vector<std::string> allowed;
          for (const toml::node& e : *v.as_array()) {
            if (!e.is_string()) fail(file, e.source(), "one_of must list strings");
            allowed.push_back(e.as_string()->get());
          }
          rule.one_of(std::move(allowed));
        } else if (name == "renamed" && v.is_table()) {
          for (auto&& [old_spelling, new_spelling] : *v.as_table()) {
            if (!new_spelling.is_string()) fail(file, new_spelling.source(), "renamed maps old spellings to strings");
            rule.renamed(std::string(old_spelling.str()), new_spelling.as_string()->get());
          }
        } else {
          fail(file, field.source(), "unknown or mistyped rule '" + std::string(name) + "' for '" + key + "'");
        }
      }
    } catch (const std::invalid_argument& e) {
      fail(file, node.source(), e.what());
    }
  }
}

}  // namespace

schema parse_schema(std::string_view text, const std::string& file) {
  toml::table root;
  if (auto error = detail::parse(text, file, load_limits{}, root)) throw config_exception(std::move(*error));
  schema out;
  for (auto&& [k, node] : root) {
    const std::string_view name = k.str();
    if ((name != "keys" && name != "maps") || !node.is_table())
      fail(file, k.source(), "a schema file has only [keys.\"<key>\"] and [maps.<key>] tables, not '" + std::string(name) + "'");
    add_rules(out, file, *node.as_table(), name == "maps");
  }
  return out;
}

schema load_schema_file(const std::filesystem::path& path) {
  config_error error;
  const auto text = read_text(path, 1 << 20, error);
  if (!text) throw config_exception(error);
  return parse_schema(*text, path.string());
}

std::string describe_schema(const schema& rules) {
  std::ostringstream out;
  out << "# Schema description (hotswap::config::describe_schema).\n";
  if (!rules.validators().empty())
    out << "# The program also runs " << rules.validators().size()
        << " validator(s) in C++ that this file cannot express.\n";
  static const char* type_names[] = {"boolean", "integer", "float", "string", "string_list", "integer_list", "date_time"};
  for (const key_rule& r : rules.rules()) {
    out << "\n[" << (r.is_map ? "maps" : "keys") << "." << to_toml_text(value{r.key}) << "]\n";
    out << "type = \"" << type_names[static_cast<int>(r.type)] << "\"\n";
    if (r.required) out << "required = true\n";
    if (r.default_value) out << "default = " << to_toml_text(*r.default_value) << "\n";
    if (r.min) out << "min = " << number(*r.min) << "\n";
    if (r.max) out << "max = " << number(*r.max) << "\n";
    if (r.earliest && r.latest)
      out << "between = [" << to_toml_text(value{r.earliest->text}) << ", " << to_toml_text(value{r.latest->text}) << "]\n";
    if (!r.allowed.empty()) out << "one_of = " << to_toml_text(value{r.allowed}) << "\n";
    if (!r.renamed.empty()) {
      out << "renamed = {";
      for (std::size_t i = 0; i < r.renamed.size(); ++i)
        out << (i == 0 ? " " : ", ") << to_toml_text(value{r.renamed[i].first}) << " = "
            << to_toml_text(value{r.renamed[i].second});
      out << " }\n";
    }
    if (!r.pattern_text.empty()) out << "pattern = " << to_toml_text(value{r.pattern_text}) << "\n";
    if (!r.doc.empty()) out << "doc = " << to_toml_text(value{r.doc}) << "\n";
  }
  return out.str();
}

}  // namespace hotswap::config
