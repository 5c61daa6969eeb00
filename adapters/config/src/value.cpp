// Value names, TOML spelling of values for messages, and snapshot lookups.
#include "hotswap/config/value.hpp"

#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace hotswap::config {

const char* to_string(value_type t) noexcept {
  switch (t) {
    case value_type::boolean: return "boolean";
    case value_type::integer: return "integer";
    case value_type::floating: return "float";
    case value_type::string: return "string";
    case value_type::string_list: return "list of strings";
    case value_type::integer_list: return "list of integers";
  }
  return "?";
}

value_type type_of(const value& v) noexcept { return static_cast<value_type>(v.index()); }

namespace {

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", u);
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string number(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  char text[32];
  std::snprintf(text, sizeof text, "%.17g", d);
  std::string s = text;
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

template <class T, class F>
std::string list(const std::vector<T>& items, F&& spell) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) out += (i == 0 ? "" : ", ") + spell(items[i]);
  return out + "]";
}

}  // namespace

std::string to_toml_text(const value& v) {
  switch (type_of(v)) {
    case value_type::boolean: return std::get<bool>(v) ? "true" : "false";
    case value_type::integer: return std::to_string(std::get<std::int64_t>(v));
    case value_type::floating: return number(std::get<double>(v));
    case value_type::string: return quoted(std::get<std::string>(v));
    case value_type::string_list: return list(std::get<std::vector<std::string>>(v), quoted);
    case value_type::integer_list:
      return list(std::get<std::vector<std::int64_t>>(v), [](std::int64_t i) { return std::to_string(i); });
  }
  return {};
}

std::map<std::string, value, std::less<>> snapshot::section(std::string_view prefix) const {
  std::map<std::string, value, std::less<>> out;
  const std::string start = std::string(prefix) + ".";
  for (auto it = values_.lower_bound(start); it != values_.end() && it->first.starts_with(start); ++it)
    out.emplace(it->first.substr(start.size()), it->second);
  return out;
}

template <class T>
const T& snapshot::must(std::string_view key) const {
  const value* v = find(key);
  if (v == nullptr) throw std::out_of_range("hotswap::config: no key '" + std::string(key) + "'");
  const T* typed = std::get_if<T>(v);
  if (typed == nullptr)
    throw std::out_of_range("hotswap::config: key '" + std::string(key) + "' is a " + to_string(type_of(*v)));
  return *typed;
}

template const bool& snapshot::must<bool>(std::string_view) const;
template const std::int64_t& snapshot::must<std::int64_t>(std::string_view) const;
template const double& snapshot::must<double>(std::string_view) const;
template const std::string& snapshot::must<std::string>(std::string_view) const;
template const std::vector<std::string>& snapshot::must<std::vector<std::string>>(std::string_view) const;
template const std::vector<std::int64_t>& snapshot::must<std::vector<std::int64_t>>(std::string_view) const;

}  // namespace hotswap::config
