// Schema declaration and the per-key rules.
#include "hotswap/config/schema.hpp"

#include <cmath>
#include <stdexcept>

#include "flat_key.hpp"

namespace hotswap::config {

namespace {

std::string bound(double d) {
  if (d == std::floor(d) && std::fabs(d) < 1e15) return std::to_string(static_cast<long long>(d));
  return to_toml_text(value{d});
}

}  // namespace

std::string key_rule::check(const value& v) const {
  const auto in_range = [&](double d) -> std::string {
    // Written as !(in range) so that NaN is refused by any bound.
    if (min && !(d >= *min)) return "below the minimum " + bound(*min);
    if (max && !(d <= *max)) return "above the maximum " + bound(*max);
    return {};
  };
  const auto text_ok = [&](const std::string& s) -> std::string {
    for (const auto& [old_spelling, new_spelling] : renamed)
      if (s == old_spelling) return "\"" + s + "\" was renamed: write \"" + new_spelling + "\"";
    if (!allowed.empty()) {
      bool found = false;
      for (const auto& a : allowed) found = found || a == s;
      if (!found) {
        std::string list;
        for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
        return "\"" + s + "\" is not one of: " + list;
      }
    }
    if (pattern && !std::regex_match(s, *pattern)) return "\"" + s + "\" does not match the pattern " + pattern_text;
    return {};
  };
  switch (type_of(v)) {
    case value_type::integer: return in_range(static_cast<double>(std::get<std::int64_t>(v)));
    case value_type::floating: return in_range(std::get<double>(v));
    case value_type::string: return text_ok(std::get<std::string>(v));
    case value_type::string_list:
      for (const auto& s : std::get<std::vector<std::string>>(v))
        if (auto why = text_ok(s); !why.empty()) return "element " + why;
      return {};
    case value_type::integer_list:
      for (const auto i : std::get<std::vector<std::int64_t>>(v))
        if (auto why = in_range(static_cast<double>(i)); !why.empty()) return "element " + std::to_string(i) + " " + why;
      return {};
    case value_type::boolean: return {};
    case value_type::date_time: {
      const datetime& d = std::get<datetime>(v);
      const datetime& bound = earliest ? *earliest : latest ? *latest : d;
      if (d.kind != bound.kind)
        return "must be a " + std::string(to_string(bound.kind)) + " (like " + bound.text + "), not a " +
               to_string(d.kind);
      if (earliest && d < *earliest) return d.text + " is before the earliest " + earliest->text;
      if (latest && d > *latest) return d.text + " is after the latest " + latest->text;
      return {};
    }
  }
  return {};
}

schema::rule_builder schema::add(std::string key, value_type t, bool is_map) {
  if (key.empty() || key.front() == '.' || key.back() == '.' || key.find("..") != std::string::npos)
    throw std::invalid_argument("hotswap::config::schema: bad key '" + key + "'");
  if (key == history_major_key) throw std::invalid_argument("hotswap::config::schema: '" + key + "' is reserved");
  for (const auto& r : rules_)
    if (r.key == key) throw std::invalid_argument("hotswap::config::schema: key '" + key + "' declared twice");
  key_rule& r = rules_.emplace_back();
  r.key = std::move(key);
  r.type = t;
  r.is_map = is_map;
  return rule_builder(r);
}

const key_rule* schema::rule_for(std::string_view key) const {
  const std::string pattern = detail::pattern_of(key);
  const std::string_view parent = detail::parent_of(pattern);
  for (const auto& r : rules_) {
    if (!r.is_map && r.key == pattern) return &r;
    if (r.is_map && !parent.empty() && parent == r.key && pattern.back() != ']') return &r;
  }
  return nullptr;
}

bool schema::is_section(std::string_view prefix) const {
  const std::string pattern = detail::pattern_of(prefix);
  for (const auto& r : rules_) {
    if (r.is_map && r.key == pattern) return true;
    if (r.key.size() > pattern.size() && r.key.starts_with(pattern) &&
        (r.key[pattern.size()] == '.' || r.key[pattern.size()] == '['))
      return true;
  }
  return false;
}

void schema::table_list(const std::string& key, const schema& element) {
  for (const key_rule& r : element.rules()) {
    key_rule& copy = add(key + "[]." + r.key, r.type, r.is_map).rule_;
    const std::string name = copy.key;
    copy = r;
    copy.key = name;
  }
}

schema::rule_builder& schema::rule_builder::required() {
  if (rule_.is_map) throw std::invalid_argument("hotswap::config::schema: a map ('" + rule_.key + "') cannot be required");
  rule_.required = true;
  return *this;
}

schema::rule_builder& schema::rule_builder::default_to(value v) {
  if (rule_.is_map) throw std::invalid_argument("hotswap::config::schema: a map ('" + rule_.key + "') has no default");
  if (rule_.type == value_type::floating && type_of(v) == value_type::integer)
    v = static_cast<double>(std::get<std::int64_t>(v));
  if (type_of(v) != rule_.type)
    throw std::invalid_argument("hotswap::config::schema: default of '" + rule_.key + "' is a " +
                                to_string(type_of(v)) + ", not a " + to_string(rule_.type));
  rule_.default_value = std::move(v);
  check_default();
  return *this;
}

schema::rule_builder& schema::rule_builder::range(double lo, double hi) {
  if (!(lo <= hi)) throw std::invalid_argument("hotswap::config::schema: empty range for '" + rule_.key + "'");
  rule_.min = lo;
  rule_.max = hi;
  check_default();
  return *this;
}

schema::rule_builder& schema::rule_builder::between(std::string_view earliest, std::string_view latest) {
  if (rule_.type != value_type::date_time)
    throw std::invalid_argument("hotswap::config::schema: between() is for date-times ('" + rule_.key + "')");
  auto lo = datetime::parse(earliest);
  auto hi = datetime::parse(latest);
  if (!(lo <= hi))
    throw std::invalid_argument("hotswap::config::schema: empty or mixed-form range for '" + rule_.key + "'");
  rule_.earliest = std::move(lo);
  rule_.latest = std::move(hi);
  check_default();
  return *this;
}

schema::rule_builder& schema::rule_builder::min(double m) {
  rule_.min = m;
  check_default();
  return *this;
}

schema::rule_builder& schema::rule_builder::max(double m) {
  rule_.max = m;
  check_default();
  return *this;
}

schema::rule_builder& schema::rule_builder::one_of(std::vector<std::string> allowed) {
  rule_.allowed = std::move(allowed);
  check_default();
  return *this;
}

schema::rule_builder& schema::rule_builder::renamed(std::string old_spelling, std::string new_spelling) {
  rule_.renamed.emplace_back(std::move(old_spelling), std::move(new_spelling));
  check_default();
  return *this;
}

schema::rule_builder& schema::rule_builder::pattern(std::string regex) {
  try {
    rule_.pattern = std::make_shared<const std::regex>(regex, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw std::invalid_argument("hotswap::config::schema: pattern of '" + rule_.key + "' does not compile: " + e.what());
  }
  rule_.pattern_text = std::move(regex);
  check_default();
  return *this;
}

schema::rule_builder& schema::rule_builder::doc(std::string text) {
  rule_.doc = std::move(text);
  return *this;
}

void schema::rule_builder::check_default() const {
  if (!rule_.default_value) return;
  if (auto why = rule_.check(*rule_.default_value); !why.empty())
    throw std::invalid_argument("hotswap::config::schema: default of '" + rule_.key + "' is invalid: " + why);
}

}  // namespace hotswap::config
