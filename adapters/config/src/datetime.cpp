// TOML dates and times: canonical text, parsing, and ordering.
#include "pre_lex.hpp"
#include "toml_values.hpp"

#include <cstdio>
#include <stdexcept>

namespace hotswap::config {

namespace {

std::string date_text(const toml::date& d) {
  char s[16];
  std::snprintf(s, sizeof s, "%04u-%02u-%02u", unsigned{d.year}, unsigned{d.month}, unsigned{d.day});
  return s;
}

std::string time_text(const toml::time& t) {
  char s[24];
  std::snprintf(s, sizeof s, "%02u:%02u:%02u", unsigned{t.hour}, unsigned{t.minute}, unsigned{t.second});
  std::string out = s;
  if (t.nanosecond != 0) {
    std::snprintf(s, sizeof s, ".%09u", static_cast<unsigned>(t.nanosecond));
    out += s;
    while (out.back() == '0') out.pop_back();
  }
  return out;
}

std::string offset_text(const toml::time_offset& o) {
  if (o.minutes == 0) return "Z";
  const int m = o.minutes < 0 ? -o.minutes : o.minutes;
  char s[8];
  std::snprintf(s, sizeof s, "%c%02d:%02d", o.minutes < 0 ? '-' : '+', m / 60, m % 60);
  return s;
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
long long days_from_civil(int y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097LL + static_cast<long long>(doe) - 719468;
}

/// An offset date-time as (seconds since the epoch in UTC, nanoseconds).
std::pair<long long, long long> instant(std::string_view text) {
  const auto parsed = toml::parse("v = " + std::string(text));
  const toml::date_time& dt = parsed["v"].as_date_time()->get();
  const long long minutes = days_from_civil(dt.date.year, dt.date.month, dt.date.day) * 1440 + dt.time.hour * 60 +
                            dt.time.minute - (dt.offset ? dt.offset->minutes : 0);
  return {minutes * 60 + dt.time.second, dt.time.nanosecond};
}

}  // namespace

namespace detail {

datetime datetime_of(const toml::node& n) {
  if (const auto* d = n.as_date()) return {datetime::form::local_date, date_text(d->get())};
  if (const auto* t = n.as_time()) return {datetime::form::local_time, time_text(t->get())};
  const toml::date_time& v = n.as_date_time()->get();
  const std::string text = date_text(v.date) + "T" + time_text(v.time);
  if (v.offset) return {datetime::form::offset_date_time, text + offset_text(*v.offset)};
  return {datetime::form::local_date_time, text};
}

std::unique_ptr<toml::node> node_of(const datetime& d) {
  const auto parsed = toml::parse("v = " + d.text);
  const toml::node& n = *parsed["v"].node();
  if (const auto* date = n.as_date()) return std::make_unique<toml::value<toml::date>>(date->get());
  if (const auto* time = n.as_time()) return std::make_unique<toml::value<toml::time>>(time->get());
  return std::make_unique<toml::value<toml::date_time>>(n.as_date_time()->get());
}

}  // namespace detail

datetime datetime::parse(std::string_view text) {
  // The text is parsed as a TOML document, so it passes the pre-lexer first, as
  // a file does (a padded date-shaped token reaches a noexcept toml++ check).
  const std::string document = "v = " + std::string(text);
  try {
    if (text.find_first_of("\n#=\"'[]{},") == std::string_view::npos &&
        !detail::pre_lex(document, "datetime", 1).error) {
      const auto parsed = toml::parse(document);
      const toml::node* n = parsed["v"].node();
      if (n != nullptr && (n->is_date() || n->is_time() || n->is_date_time())) return detail::datetime_of(*n);
    }
  } catch (const toml::parse_error&) {
  } catch (const detail::tomlpp_check_failed&) {
  }
  throw std::invalid_argument("hotswap::config: '" + std::string(text) + "' is not a TOML date, time or date-time");
}

std::partial_ordering datetime::operator<=>(const datetime& other) const {
  if (kind != other.kind) return std::partial_ordering::unordered;
  // The canonical texts of local values order as their values do (fixed-width
  // fields, a fraction without trailing zeros); offset ones compare as instants.
  if (kind != form::offset_date_time) return text <=> other.text;
  return instant(text) <=> instant(other.text);
}

}  // namespace hotswap::config
