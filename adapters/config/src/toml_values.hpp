// Between toml++'s values and this library's: date-times both ways. Internal.
#pragma once

#include "toml.hpp"

#include "hotswap/config/value.hpp"

namespace hotswap::config::detail {

/// The datetime of a toml++ date, time or date-time node (n.is_date() ||
/// n.is_time() || n.is_date_time()).
datetime datetime_of(const toml::node& n);

/// The toml++ node holding `d` (to write it back as TOML).
std::unique_ptr<toml::node> node_of(const datetime& d);

}  // namespace hotswap::config::detail
