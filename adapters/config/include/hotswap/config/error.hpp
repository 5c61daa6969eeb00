// Why a configuration was refused, and where: every rejection (a syntax
// error, a wrong type, an unknown key, a validator's veto, an edit based on a
// stale history version) carries the file, the 1-based line and column, and a
// reason a person can act on. Printed as "file:line:column: reason", the form
// editors and compilers use, so an editor can jump to it.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace hotswap::config {

struct config_error {
  std::string file;
  std::uint32_t line = 1;
  std::uint32_t column = 1;
  std::string reason;

  std::string to_string() const {
    return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + reason;
  }
};

/// Thrown where an API cannot return a config_error (constructors, the CLI's
/// schema file); carries the structured error.
class config_exception : public std::runtime_error {
 public:
  explicit config_exception(config_error e) : std::runtime_error(e.to_string()), error_(std::move(e)) {}
  const config_error& error() const noexcept { return error_; }

 private:
  config_error error_;
};

}  // namespace hotswap::config
