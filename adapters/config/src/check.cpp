// check_toml(): the pre-lexer and toml++ alone, and toml-test's JSON encoding.
#include "hotswap/config/check.hpp"

#include "parse.hpp"
#include "toml_values.hpp"

#include <cstdio>

namespace hotswap::config {

namespace {

void json_string(std::string& out, std::string_view s) {
  out += '"';
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (const auto u = static_cast<unsigned char>(c); u < 0x20 || u == 0x7f) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", u);
          out += escaped;
        } else {
          out += c;  // toml++ has checked that strings are UTF-8
        }
    }
  }
  out += '"';
}

void typed(std::string& out, const char* type, std::string_view text) {
  out += "{\"type\":\"";
  out += type;
  out += "\",\"value\":";
  json_string(out, text);
  out += '}';
}

/// Recursion is bounded: pre_lex() refused anything deeper than max_depth.
void json_node(std::string& out, const toml::node& n) {
  if (const auto* t = n.as_table()) {
    out += '{';
    bool first = true;
    for (auto&& [k, v] : *t) {
      if (!std::exchange(first, false)) out += ',';
      json_string(out, k.str());
      out += ':';
      json_node(out, v);
    }
    out += '}';
  } else if (const auto* a = n.as_array()) {
    out += '[';
    for (std::size_t i = 0; i < a->size(); ++i) {
      if (i != 0) out += ',';
      json_node(out, (*a)[i]);
    }
    out += ']';
  } else if (const auto* s = n.as_string()) {
    typed(out, "string", s->get());
  } else if (const auto* i = n.as_integer()) {
    typed(out, "integer", std::to_string(i->get()));
  } else if (const auto* f = n.as_floating_point()) {
    typed(out, "float", to_toml_text(value{f->get()}));
  } else if (const auto* b = n.as_boolean()) {
    typed(out, "bool", b->get() ? "true" : "false");
  } else if (n.is_date() || n.is_time() || n.is_date_time()) {
    static constexpr const char* names[] = {"datetime", "datetime-local", "date-local", "time-local"};
    const datetime d = detail::datetime_of(n);
    typed(out, names[static_cast<int>(d.kind)], d.text);
  }
}

}  // namespace

check_result check_toml(std::string_view text, std::string file, bool json, load_limits limits) {
  check_result result;
  toml::table root;
  result.error = detail::parse(text, file, limits, root);
  if (!result.error && json) json_node(result.json, root);
  return result;
}

}  // namespace hotswap::config
