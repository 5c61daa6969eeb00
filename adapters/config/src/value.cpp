// Value names, TOML spelling of values for messages, and snapshot lookups.
#include "hotswap/config/value.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <hotswap/utf8.hpp>
#include <sstream>
#include <stdexcept>

#include "flat_key.hpp"
#include "toml.hpp"

namespace hotswap::config {

const char* to_string(value_type t) noexcept {
  switch (t) {
    case value_type::boolean: return "boolean";
    case value_type::integer: return "integer";
    case value_type::floating: return "float";
    case value_type::string: return "string";
    case value_type::string_list: return "list of strings";
    case value_type::integer_list: return "list of integers";
    case value_type::date_time: return "date-time";
  }
  return "?";
}

const char* to_string(datetime::form f) noexcept {
  switch (f) {
    case datetime::form::offset_date_time: return "offset date-time";
    case datetime::form::local_date_time: return "local date-time";
    case datetime::form::local_date: return "local date";
    case datetime::form::local_time: return "local time";
  }
  return "?";
}

value_type type_of(const value& v) noexcept { return static_cast<value_type>(v.index()); }

namespace {

/// `s` as a TOML basic string, escaped by toml++'s formatter: on one line
/// (diffs and messages print one value per line), UTF-8 kept as it is. TOML
/// text is UTF-8, and toml++ would read a stray byte as Latin-1, so
/// ill-formed parts become U+FFFD first.
std::string quoted(const std::string& s) {
  std::ostringstream out;
  out << toml::toml_formatter{toml::value<std::string>{hotswap::valid_utf8(s)},
                              toml::format_flags::allow_unicode_strings};
  return std::move(out).str();
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
    case value_type::date_time: return std::get<datetime>(v).text;
  }
  return {};
}

std::map<std::string, value, std::less<>> snapshot::section(std::string_view prefix) const {
  std::map<std::string, value, std::less<>> out;
  const std::string start = std::string(prefix) + ".";
  for (auto it = values_.lower_bound(start); it != values_.end() && it->first.starts_with(start); ++it) {
    const std::string_view rest = std::string_view(it->first).substr(start.size());
    const auto pieces = detail::split_key(rest);
    out.emplace(pieces.size() == 1 && pieces[0].indices.empty() ? pieces[0].name : std::string(rest), it->second);
  }
  return out;
}

std::size_t snapshot::count(std::string_view key) const {
  std::size_t n = 0;
  const std::string start = std::string(key) + "[";
  for (auto it = values_.lower_bound(start); it != values_.end() && it->first.starts_with(start); ++it) {
    std::size_t i = 0;
    const char* digits = it->first.data() + start.size();
    const auto [end, ec] = std::from_chars(digits, it->first.data() + it->first.size(), i);
    if (ec == std::errc{} && *end == ']') n = std::max(n, i + 1);
  }
  return n;
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
template const datetime& snapshot::must<datetime>(std::string_view) const;

}  // namespace hotswap::config
