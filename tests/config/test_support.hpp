// Shared pieces of the config tests: a fresh directory, file writers in the
// styles editors use, the test schema, and a store that records its reports.
#pragma once

#include <chrono>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include <hotswap/config/store.hpp>

namespace config_test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr auto bounded_wait = 10s;  // every wait in these tests ends by then

/// A fresh directory under $TMPDIR (or /tmp), removed with its contents.
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const fs::path& path() const noexcept { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

/// Options for a test store: no log output, a short debounce.
hotswap::config::store_options quiet_options();

/// Writes a temporary next to `path` and renames it over (vim, most IDEs).
void save_by_rename(const fs::path& path, const std::string& text);
/// Truncates and rewrites the file itself (nano, `echo >`).
void save_in_place(const fs::path& path, const std::string& text);
std::string read_all(const fs::path& path);

/// a: required integer; b, name, level, ratio, flag, limits.max: defaulted;
/// tags, ports: optional lists; routes.*: strings; a validator vetoes name "forbidden".
hotswap::config::schema test_schema();

struct run_result {
  int code = -1;       ///< exit code; -1 when killed by a signal
  std::string output;  ///< stdout and stderr
};
/// Runs hotswap-config with `args` (a shell command line's arguments).
run_result cli(const std::string& args);

/// A store's reports, collected under a mutex (they arrive on the watcher thread).
class recorder {
 public:
  void operator()(const hotswap::config::save_report& r);
  std::vector<hotswap::config::save_report> reports() const;
  std::size_t count(hotswap::config::save_report::outcome o) const;

 private:
  mutable std::mutex mutex_;
  std::vector<hotswap::config::save_report> reports_;
};

}  // namespace config_test
