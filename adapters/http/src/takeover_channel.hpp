// The takeover channel: how a running hotswap-httpd hands its sockets to the
// new binary that replaces it (POST /admin/upgrade, the new one started with
// --takeover PATH).
//
// A SOCK_SEQPACKET Unix socket, so every message keeps its boundaries and the
// descriptors passed with it (SCM_RIGHTS) arrive with the message they belong
// to. The running server creates it for one upgrade only, in a fresh
// directory of its own (mkdtemp, mode 0700) with the socket file at mode
// 0600: nobody else can reach the path. Both ends check the other's
// credentials (SO_PEERCRED): the same uid, and the process each expects (the
// old server accepts only the child it started; the child only its parent).
// Messages longer than one datagram are sent in chunks; descriptors travel
// with the first.
//
//   new -> old  hello | failed(why)
//   old -> new  state (JSON: counters, audit, serving files)
//   new -> old  loaded (the serving files are loaded and preflighted)
//   old -> new  listeners (JSON naming them + their descriptors)
//   new -> old  ready (accepting on them)
//   old -> new  connection (unparsed bytes + the socket) ... done (JSON: counts)
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace hotswap::http::detail {

enum class takeover_kind : std::uint32_t { hello = 1, failed, state, loaded, listeners, ready, connection, done };
const char* to_string(takeover_kind k) noexcept;

/// A broken handshake: the peer left, said something out of turn, or took too long.
class takeover_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A received message. Its descriptors belong to the receiver (close what it does not keep).
struct takeover_message {
  takeover_kind kind{};
  std::string payload;
  std::vector<int> fds;
};

/// One end of a connected takeover socket; owns the descriptor. send() may be
/// called from several threads (each message goes out whole).
class takeover_channel {
 public:
  explicit takeover_channel(int fd) noexcept : fd_(fd) {}
  ~takeover_channel();
  takeover_channel(const takeover_channel&) = delete;
  takeover_channel& operator=(const takeover_channel&) = delete;

  /// Throws takeover_error when the peer is gone.
  void send(takeover_kind kind, std::string_view payload, const std::vector<int>& fds = {});
  /// The next message, or takeover_error on end of stream, a malformed message or after `limit`.
  takeover_message receive(std::chrono::milliseconds limit);
  /// The next message, if `expected` (a `failed` message or anything else throws, saying so).
  takeover_message expect(takeover_kind expected, std::chrono::milliseconds limit);
  ucred peer() const;

 private:
  int fd_;
  std::mutex send_mutex_;
};

/// The old server's end: a private directory with the listening socket in it,
/// both removed by the destructor.
class takeover_listener {
 public:
  /// Under `parent` (the temporary directory if empty). Throws config_error naming the path.
  explicit takeover_listener(const std::filesystem::path& parent);
  ~takeover_listener();
  takeover_listener(const takeover_listener&) = delete;
  takeover_listener& operator=(const takeover_listener&) = delete;

  const std::filesystem::path& path() const noexcept { return socket_; }
  /// A connection from process `pid` of this uid within `limit`; others are
  /// refused (closed, and described in `refused`). Empty when none came.
  std::optional<int> accept_from(pid_t pid, std::chrono::milliseconds limit, std::string& refused);

 private:
  std::filesystem::path dir_, socket_;
  int fd_ = -1;
};

/// The new server's end: checks that `path` is a socket of this user (mode
/// 0600 or stricter) in a directory nobody else can write, connects, and
/// checks that the peer runs as this uid and is `expected_pid` (the parent).
/// Throws takeover_error naming the path and the cause.
int connect_takeover(const std::filesystem::path& path, pid_t expected_pid);

}  // namespace hotswap::http::detail
