// The schema shared by the crash tests and their child process.
#pragma once

#include <hotswap/config/schema.hpp>

inline hotswap::config::schema crash_schema() {
  hotswap::config::schema s;
  s.integer("a").required();
  s.string("text").default_to("a longer value, so that a torn write would show");
  return s;
}
