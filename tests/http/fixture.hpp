// What every HTTP test needs: a private plugin directory holding the example
// applications, an admin token file, a server on ephemeral loopback ports,
// and clients for both listeners.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <hotswap/http/probe_client.hpp>
#include <hotswap/http/server.hpp>
#include <memory>
#include <string>

namespace hotswap::http::testing {

namespace fs = std::filesystem;

/// A private directory (mode 0700) with plugins/ (the built apps, mode 0644)
/// and a token file (mode 0600). Removed at the end.
class scratch {
 public:
  scratch();
  ~scratch();
  const fs::path& root() const noexcept { return root_; }
  fs::path plugins() const { return root_ / "plugins"; }
  fs::path token_file() const { return root_ / "admin.token"; }
  const std::string& token() const noexcept { return token_; }

 private:
  fs::path root_;
  std::string token_;
};

/// A config for a server on ephemeral ports with routes / (greeting),
/// /json (json) and /slow (slow), two workers, short timeouts.
server_config test_config(const scratch& s);

/// Waits (bounded) until `done` holds.
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit = std::chrono::seconds(10));

/// A request the host must refuse: what is sent, and the status expected.
struct refusal_case {
  const char* name;
  std::string bytes;
  int status;
};

class http_test : public ::testing::Test {
 protected:
  void start(const std::function<void(server_config&)>& adjust = {});
  void TearDown() override;

  /// Sends `c` on a fresh connection: its status comes from the host (no
  /// module version), with Connection: close (HTTP/1.1), and the server closes.
  void expect_refused(const refusal_case& c);
  /// One request on a fresh connection.
  probe_reply request(const std::string& raw);
  /// An admin request with the token (or `token` if given).
  probe_reply admin(const std::string& method, const std::string& target, const std::string& body = {},
                    const std::string* token = nullptr);
  scratch dir_;
  std::unique_ptr<server> server_;
};

}  // namespace hotswap::http::testing
