#include "carried_counters.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <set>

namespace hotswap::http::detail {

namespace {

// One line of the exposition: a comment naming a family, or a sample.
struct line_view {
  std::string_view directive;  // "HELP", "TYPE" or empty for a sample
  std::string_view family;     // HELP/TYPE: the family's name
  std::string_view rest;       // HELP: the text; TYPE: the type
  std::string_view series;     // sample: "name{labels}"
  double value = 0;
  bool sample = false;
};

line_view parse(std::string_view line) {
  line_view v;
  if (line.starts_with("# HELP ") || line.starts_with("# TYPE ")) {
    v.directive = line.substr(2, 4);
    const std::string_view tail = line.substr(7);
    const auto space = tail.find(' ');
    v.family = tail.substr(0, space);
    v.rest = space == std::string_view::npos ? std::string_view() : tail.substr(space + 1);
    return v;
  }
  if (line.empty() || line.front() == '#') return v;
  const auto space = line.rfind(' ');
  if (space == std::string_view::npos) return v;
  v.series = line.substr(0, space);
  const std::string_view number = line.substr(space + 1);
  const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), v.value);
  v.sample = ec == std::errc{} && end == number.data() + number.size();
  return v;
}

std::string format(double v) {
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) std::snprintf(buf, sizeof buf, "%.0f", v);
  else std::snprintf(buf, sizeof buf, "%.15g", v);
  return buf;
}

bool carried_type(std::string_view type) { return type == "counter" || type == "histogram"; }

template <class F>
void for_each_line(std::string_view text, F&& f) {
  while (!text.empty()) {
    const auto nl = text.find('\n');
    f(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
}

}  // namespace

void carried_counters::load(std::string_view exposition) {
  std::map<std::string, family> families;
  std::string current, help;
  for_each_line(exposition, [&](std::string_view line) {
    const line_view v = parse(line);
    if (v.directive == "HELP") {
      help = std::string(v.rest);
    } else if (v.directive == "TYPE") {
      current = carried_type(v.rest) ? std::string(v.family) : std::string();
      if (!current.empty()) {
        family& f = families[current];
        f.type = std::string(v.rest);
        f.help = help;
      }
    } else if (v.sample && !current.empty() && v.series.starts_with(current)) {
      families[current].samples[std::string(v.series)] += v.value;
    }
  });
  std::lock_guard lock(mutex_);
  families_ = std::move(families);
}

std::string carried_counters::add_to(std::string_view exposition) const {
  std::lock_guard lock(mutex_);
  std::string out;
  out.reserve(exposition.size() + 1024);
  const family* open = nullptr;  // the carried family whose samples we are in
  std::set<std::string_view> seen;  // its series we printed
  std::set<std::string_view> families_seen;
  auto close_family = [&] {
    if (open != nullptr)
      for (const auto& [series, value] : open->samples)
        if (!seen.contains(series)) out += series + ' ' + format(value) + '\n';
    open = nullptr;
    seen.clear();
  };
  for_each_line(exposition, [&](std::string_view line) {
    const line_view v = parse(line);
    if (v.directive == "HELP") close_family();
    if (v.directive == "TYPE") {
      close_family();
      const auto it = families_.find(std::string(v.family));
      if (it != families_.end()) {
        open = &it->second;
        families_seen.insert(it->first);
      }
    }
    if (v.sample && open != nullptr) {
      const auto it = open->samples.find(std::string(v.series));
      if (it != open->samples.end()) {
        seen.insert(it->first);
        out += std::string(v.series) + ' ' + format(v.value + it->second) + '\n';
        return;
      }
    }
    if (!line.empty()) {
      out += line;
      out += '\n';
    }
  });
  close_family();
  for (const auto& [name, f] : families_) {  // families this process does not have at all
    if (families_seen.contains(name)) continue;
    out += "# HELP " + name + ' ' + f.help + "\n# TYPE " + name + ' ' + f.type + '\n';
    for (const auto& [series, value] : f.samples) out += series + ' ' + format(value) + '\n';
  }
  return out;
}

}  // namespace hotswap::http::detail
