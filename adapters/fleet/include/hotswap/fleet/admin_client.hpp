// hotswap-httpd's admin API over its Unix socket (admin.socket), as the
// agent uses it: the socket authorises the agent by its uid (SO_PEERCRED),
// so no token file is shared and nothing listens on the network for it.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>

namespace hotswap::fleet {

struct admin_reply {
  int status = 0;
  std::string body;
};

class admin_client {
 public:
  explicit admin_client(std::filesystem::path socket, std::chrono::milliseconds timeout = std::chrono::seconds(30));
  /// One request; throws std::runtime_error naming the socket when the host cannot be reached.
  admin_reply get(const std::string& target);
  admin_reply post(const std::string& target, const std::string& json_body);

 private:
  admin_reply request(bool post, const std::string& target, const std::string& body);
  std::filesystem::path socket_;
  std::chrono::milliseconds timeout_;
};

}  // namespace hotswap::fleet
