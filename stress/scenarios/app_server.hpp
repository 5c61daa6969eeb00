// The server an HTTP end-to-end scenario runs against: hotswap-httpd as a
// library on 127.0.0.1 (a free port, no admin side), serving example
// applications copied into a private temporary directory (the loader's
// allowed directory: owner-only, as its policy requires). The scenario swaps
// or starts canaries through `modules()`; the destructor stops the server and
// removes the directory.
#pragma once

#include <filesystem>
#include <hotswap/http/server.hpp>
#include <initializer_list>
#include <memory>
#include <random>
#include <string>
#include <system_error>
#include <unistd.h>
#include <vector>

#ifndef HOTSWAP_HTTP_APP_DIR
#define HOTSWAP_HTTP_APP_DIR "."
#endif

namespace hotswap::stress {

class app_server {
 public:
  /// `apps`: file names under HOTSWAP_HTTP_APP_DIR; `routes`: files among them.
  app_server(const std::string& scenario, std::initializer_list<const char*> apps,
             std::initializer_list<http::route_config> routes, unsigned threads) {
    namespace fs = std::filesystem;
    std::random_device rd;
    root_ = fs::temp_directory_path() /
            ("hotswap-stress-" + scenario + "-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    fs::create_directories(plugin_dir());
    fs::permissions(root_, fs::perms::owner_all);
    fs::permissions(plugin_dir(), fs::perms::owner_all);
    for (const char* f : apps) {
      fs::copy_file(fs::path(HOTSWAP_HTTP_APP_DIR) / f, plugin_dir() / f);
      fs::permissions(plugin_dir() / f, fs::perms::owner_read | fs::perms::owner_write);
    }
    http::server_config c;
    c.port = 0;
    c.admin_enabled = false;
    c.threads = threads;
    c.plugin_dir = plugin_dir();
    c.shadow_dir = root_ / "shadow";
    c.routes = routes;
    server_ = std::make_unique<http::server>(c);
    server_->start();
  }
  ~app_server() {
    server_->stop();
    server_->wait();
    server_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }
  app_server(const app_server&) = delete;
  app_server& operator=(const app_server&) = delete;

  std::filesystem::path plugin_dir() const { return root_ / "plugins"; }
  http::server& server() { return *server_; }
  const http::server& server() const { return *server_; }
  auto& modules() { return server_->modules(); }
  unsigned short port() const { return server_->port(); }

 private:
  std::filesystem::path root_;
  std::unique_ptr<http::server> server_;
};

}  // namespace hotswap::stress
