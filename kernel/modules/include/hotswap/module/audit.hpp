// The audit trail's hygiene: what reaches a log sink cannot forge a line.
//
// File names, principals and plugin messages come from outside. Before any
// sink sees an event, every text field is capped (the rest replaced by "...",
// never cutting a UTF-8 character in two) and each control character (and
// DEL) is replaced by U+FFFD, so a newline in a file name cannot start a fake
// line in any sink. Nothing is escaped here: each sink escapes for its own
// format, once (a file named `a\b` reads back from the JSON log as `a\b`).
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

#include <hotswap/utf8.hpp>
#include "record.hpp"

namespace hotswap::modules {

/// `text` with each control character replaced by U+FFFD, at most `cap` bytes
/// (then "..."). Other bytes, ill-formed UTF-8 included, are left to the sink.
inline std::string strip_control(std::string_view text, std::size_t cap) {
  std::string out;
  out.reserve(text.size() < cap ? text.size() : cap);
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    const utf8_span seq = utf8_sequence(text, i);
    const bool control = c < 0x20 || c == 0x7f;
    const std::string_view piece = control ? replacement_character : text.substr(i, seq.valid ? seq.length : 1);
    if (out.size() + piece.size() > cap) {
      out += "...";
      break;
    }
    out += piece;
    i += control ? 1 : piece.size();
  }
  return out;
}

/// Every text field of `e` stripped and capped (the message at `cap`, the others at cap / 4, at least 256).
inline module_event sanitized(const module_event& e, std::size_t cap) {
  const std::size_t small = cap / 4 < 256 ? 256 : cap / 4;
  module_event out = e;
  out.principal = strip_control(e.principal, small);
  out.module = strip_control(e.module, small);
  out.file = strip_control(e.file, small);
  out.from_build = strip_control(e.from_build, small);
  out.to_build = strip_control(e.to_build, small);
  out.message = strip_control(e.message, cap);
  return out;
}

namespace detail {
/// `s` as a JSON string: quote, backslash and control characters escaped,
/// ill-formed UTF-8 replaced by U+FFFD (JSON text is UTF-8).
inline void json_string(std::string& out, std::string_view s) {
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    const hotswap::utf8_span seq = hotswap::utf8_sequence(s, i);
    const auto c = static_cast<unsigned char>(s[i]);
    if (!seq.valid) {
      out += hotswap::replacement_character;
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += s[i];
    } else if (c < 0x20 || c == 0x7f) {
      char buf[7];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += s.substr(i, seq.length);
    }
    i += seq.length;
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
