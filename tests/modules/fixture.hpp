// What every module test needs: a private plugin directory and shadow
// directory, the plugins CMake built, an event sink, and leak probes
// (/proc/self/fd, /proc/self/maps).
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <hotswap/hotswap.hpp>
#include <hotswap/module/module.hpp>
#include <mutex>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "test_api.h"

namespace hotswap::testing {

namespace fs = std::filesystem;

inline fs::path built_plugin(const std::string& name) { return fs::path(HOTSWAP_TEST_PLUGIN_DIR) / (name + ".so"); }

inline std::uint64_t id_of(unsigned plugin_version, std::uint64_t generation) {
  return (std::uint64_t{plugin_version} << 32) | generation;
}

/// Collects module events from any thread.
class event_log {
 public:
  modules::module_log sink() {
    return [this](const modules::module_event& e) {
      std::lock_guard lock(mutex_);
      events_.push_back(e);
    };
  }
  std::vector<modules::module_event> of(modules::module_event_kind k) const {
    std::lock_guard lock(mutex_);
    std::vector<modules::module_event> out;
    for (const auto& e : events_)
      if (e.kind == k) out.push_back(e);
    return out;
  }
  std::size_t count(modules::module_event_kind k) const { return of(k).size(); }

 private:
  mutable std::mutex mutex_;
  std::vector<modules::module_event> events_;
};

inline std::size_t open_fds() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

/// Distinct files whose mapping line contains `needle`, mapped in this process.
inline std::set<std::string> mapped_files(const std::string& needle) {
  std::ifstream maps("/proc/self/maps");
  std::set<std::string> out;
  for (std::string line; std::getline(maps, line);) {
    if (line.find(needle) != std::string::npos && line.find('/') != std::string::npos)
      out.insert(line.substr(line.find('/')));
  }
  return out;
}
inline std::size_t maps_lines(const std::string& needle) {
  std::ifstream maps("/proc/self/maps");
  std::size_t n = 0;
  for (std::string line; std::getline(maps, line);)
    if (line.find(needle) != std::string::npos) ++n;
  return n;
}

inline std::size_t files_in(const fs::path& dir) {
  std::size_t n = 0;
  if (!fs::exists(dir)) return 0;  // memory and in-place modes never create it
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
  return n;
}

inline std::vector<std::byte> bytes_of(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::vector<char> c((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(c.size());
  std::memcpy(out.data(), c.data(), c.size());
  return out;
}

inline void write_file(const fs::path& p, std::span<const std::byte> bytes, mode_t mode = 0644) {
  fs::remove(p);
  {
    std::ofstream out(p, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  ::chmod(p.c_str(), mode);  // explicit: independent of the umask
}

/// A fresh plugin directory and shadow directory per test, removed afterwards.
class module_env : public ::testing::Test {
 protected:
  module_env() {
    std::string tmpl = (fs::temp_directory_path() / "hotswap-modtest-XXXXXX").string();
    root_ = ::mkdtemp(tmpl.data());
    plugins = root_ / "plugins";
    shadow = root_ / "shadow";
    fs::create_directory(plugins);
    ::chmod(plugins.c_str(), 0755);
  }
  ~module_env() override {
    settle();
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  /// Runs pending retires, then waits for the unload workers they started.
  void settle() {
    dom.barrier();
    ASSERT_TRUE(modules::wait_for_unloads(std::chrono::seconds(30)));
  }

  /// Copies a built plugin into the plugin directory as `as` (default: its own name).
  fs::path install(const std::string& plugin, std::string as = {}, mode_t mode = 0644) {
    if (as.empty()) as = plugin + ".so";
    const fs::path dst = plugins / as;
    write_file(dst, bytes_of(built_plugin(plugin)), mode);
    return dst;
  }

  modules::loader_options loader_opts(modules::shadow_mode mode = modules::shadow_mode::file) {
    modules::loader_options o;
    o.shadow.mode = mode;
    o.shadow.dir = shadow;
    o.shadow.fsync = false;  // tests run on whatever /tmp is; the fsync path is covered by the bench
    o.policy.allowed_dir = plugins;
    o.log = log.sink();
    o.trace = [this](std::string_view stage, const fs::path& p) {
      if (on_stage) on_stage(stage, p);
    };
    return o;
  }
  std::shared_ptr<const modules::module_loader> make_loader(modules::shadow_mode mode = modules::shadow_mode::file) {
    return std::make_shared<const modules::module_loader>(loader_opts(mode));
  }
  modules::registry_options registry_opts(modules::shadow_mode mode = modules::shadow_mode::file) {
    modules::registry_options o;
    o.loader = loader_opts(mode);
    o.preflight = false;  // the tests that are about it turn it on
    return o;
  }

  fs::path root_, plugins, shadow;
  event_log log;  // before dom: unloads run by dom's destructor still log here
  std::function<void(std::string_view, const fs::path&)> on_stage;
  hotswap::domain dom;
};

inline std::uint64_t identify(const modules::module_ref<test_api>& m) {
  return m.call([](const test_api& a) { return a.identify(); });
}
inline std::uint64_t identify(const modules::module_slot<test_api>& m) {
  return m.call([](const test_api& a) { return a.identify(); });
}

}  // namespace hotswap::testing
