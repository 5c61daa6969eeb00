#include "test_support.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace config_test {

temp_dir::temp_dir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/hotswap-config-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) throw std::system_error(errno, std::system_category(), "mkdtemp");
  path_ = pattern;
}

temp_dir::~temp_dir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

hotswap::config::store_options quiet_options() {
  hotswap::config::store_options o;
  o.debounce = 10ms;
  o.log = [](hotswap::config::log_level, const std::string&) {};
  return o;
}

void save_by_rename(const fs::path& path, const std::string& text) {
  fs::path temp = path.parent_path() / ".swp-";
  temp += path.filename();
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out << text;
  }
  fs::rename(temp, path);
}

void save_in_place(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

run_result cli(const std::string& args) {
  run_result r;
  const std::string command = std::string(HOTSWAP_CONFIG_CLI) + " " + args + " 2>&1";
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buffer{};
  std::size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), p)) > 0) r.output.append(buffer.data(), n);
  const int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

hotswap::config::schema test_schema() {
  hotswap::config::schema s;
  s.integer("a").range(0, 1'000'000).required();
  s.integer("b").default_to(std::int64_t{0});
  s.integer("c").default_to(std::int64_t{0});
  s.string("name").pattern("[a-z]+").default_to("x");
  s.string("level").one_of({"low", "high"}).default_to("low");
  s.floating("ratio").range(0, 1).default_to(0.5);
  s.boolean("flag").default_to(false);
  s.string_list("tags");
  s.integer_list("ports").range(1, 65535);
  s.integer("limits.max").range(1, 100).default_to(std::int64_t{10});
  s.string_map("routes");
  s.validator([](const hotswap::config::snapshot& c) -> std::optional<hotswap::config::veto> {
    if (c.string("name") == "forbidden") return hotswap::config::veto{"name", "this name is vetoed"};
    return std::nullopt;
  });
  return s;
}

void recorder::operator()(const hotswap::config::save_report& r) {
  std::lock_guard lock(mutex_);
  reports_.push_back(r);
}

std::vector<hotswap::config::save_report> recorder::reports() const {
  std::lock_guard lock(mutex_);
  return reports_;
}

std::size_t recorder::count(hotswap::config::save_report::outcome o) const {
  std::lock_guard lock(mutex_);
  std::size_t n = 0;
  for (const auto& r : reports_) n += r.result == o;
  return n;
}

}  // namespace config_test
