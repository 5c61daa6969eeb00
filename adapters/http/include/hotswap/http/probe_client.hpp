// A small blocking HTTP/1.1 client that counts exactly: it reports every
// failure by kind (connect, write, read, timeout) instead of retrying, and
// parses just enough (status line, headers, Content-Length body) to check a
// response's status and version header. Used by the tests and the `http`
// stress scenario's load generator; not a general-purpose client.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace hotswap::http {

enum class probe_error { none, connect, write, read, timeout };
const char* to_string(probe_error e) noexcept;

struct probe_reply {
  int status = 0;
  std::map<std::string, std::string> headers;  ///< names in lowercase
  std::string body;

  /// The X-Hotswap-Version header as a number (0 when absent or "0").
  std::uint64_t version() const;
  std::string header(const std::string& lowercase_name) const;
};

class probe_client {
 public:
  explicit probe_client(std::uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ~probe_client();
  probe_client(const probe_client&) = delete;
  probe_client& operator=(const probe_client&) = delete;

  probe_error connect();
  bool connected() const noexcept { return fd_ >= 0; }
  void close() noexcept;

  /// Writes raw bytes (one or several requests, or garbage).
  probe_error send(std::string_view bytes);
  /// Reads one response. read: the peer closed before a whole response.
  probe_error receive(probe_reply& out);
  /// True when the server closed the connection (a read sees end of file) within the timeout.
  bool closed_by_peer();

  /// send + receive of one request (connecting first if needed).
  probe_error exchange(std::string_view request, probe_reply& out);

  /// "GET target HTTP/1.1" with Host and any extra header lines ("Name: value\r\n").
  static std::string get(std::string_view target, std::string_view extra_headers = {});
  static std::string post(std::string_view target, std::string_view body, std::string_view extra_headers = {});

 private:
  probe_error fill();  // reads more into buffer_

  std::uint16_t port_;
  std::chrono::milliseconds timeout_;
  int fd_ = -1;
  std::string buffer_;
};

}  // namespace hotswap::http
