// The audit trail's hygiene: what reaches a log sink cannot forge a line.
//
// File names, principals and plugin messages come from outside. Before any
// sink sees an event, every text field has its control characters (and DEL)
// escaped as \xNN and a backslash doubled, so a newline in a file name cannot
// start a fake line, and is cut to a size cap (the rest replaced by "...").
// json_lines_sink writes one JSON object per line.
//
//   registry_options o;  o.loader.log = hotswap::modules::json_lines_sink(audit_file);
//   // {"kind":"refused","principal":"ci","module":"calc","file":"/srv/p/calc.so",
//   //  "from_version":3,"to_version":0,"from_build":"1.2","to_build":"","message":"..."}
#pragma once

#include <cstdio>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <string_view>

#include "record.hpp"

namespace hotswap::modules {

/// `text` with control characters and backslashes escaped, at most `cap` bytes.
inline std::string escape_control(std::string_view text, std::size_t cap) {
  std::string out;
  out.reserve(text.size() < cap ? text.size() : cap);
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (out.size() >= cap) {
      out += "...";
      break;
    }
    if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out;
}

/// Every text field of `e` escaped and capped (the message at `cap`, the others at cap / 4, at least 256).
inline module_event sanitized(const module_event& e, std::size_t cap) {
  const std::size_t small = cap / 4 < 256 ? 256 : cap / 4;
  module_event out = e;
  out.principal = escape_control(e.principal, small);
  out.module = escape_control(e.module, small);
  out.file = escape_control(e.file, small);
  out.from_build = escape_control(e.from_build, small);
  out.to_build = escape_control(e.to_build, small);
  out.message = escape_control(e.message, cap);
  return out;
}

namespace detail {
inline void json_string(std::string& out, std::string_view s) {
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7f) {
      char buf[7];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  out += '"';
}
}  // namespace detail

/// One event as one line of JSON (no trailing newline).
inline std::string to_json_line(const module_event& e) {
  std::string out = "{\"kind\":";
  detail::json_string(out, to_string(e.kind));
  auto field = [&](const char* name, std::string_view v) {
    out += ",\"";
    out += name;
    out += "\":";
    detail::json_string(out, v);
  };
  field("principal", e.principal);
  field("module", e.module);
  field("file", e.file);
  out += ",\"from_version\":" + std::to_string(e.from_version) + ",\"to_version\":" + std::to_string(e.to_version);
  field("from_build", e.from_build);
  field("to_build", e.to_build);
  field("message", e.message);
  out += '}';
  return out;
}

/// A sink writing JSON lines to `out` (kept alive by the caller), one lock per line.
inline module_log json_lines_sink(std::ostream& out) {
  auto mutex = std::make_shared<std::mutex>();
  return [&out, mutex](const module_event& e) {
    const std::string line = to_json_line(e) + "\n";
    std::lock_guard lock(*mutex);
    out << line << std::flush;
  };
}

}  // namespace hotswap::modules
