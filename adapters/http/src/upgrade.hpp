// Host upgrade: a new hotswap-httpd binary takes over from the running one
// without losing a request (POST /admin/upgrade {"binary": PATH}).
//
// The old process starts PATH with its own arguments plus --takeover SOCKET
// (takeover_channel.hpp). The new one initialises fully (settings, modules
// loaded and preflighted, admin token read), then connects, receives the
// state to carry (counters, audit events, the files its modules serve now and
// the routes' policies), loads those files if they differ from its own, and
// only then receives the listening sockets and starts accepting. The old one
// then closes its copies of the listeners (the sockets live on in the new
// process, with their backlogs) and passes each application connection on at
// its next idle moment with the bytes it read but did not parse
// (connection.hpp); a connection busy past timeouts.upgrade_drain_ms is answered with
// Connection: close instead (counted). Then it answers the admin call and exits.
//
// A new process that fails (exits, crashes, refuses its settings or a
// module, or takes longer than timeouts.upgrade_timeout_ms) is stopped, and the old
// one serves on: it had not stopped accepting. The admin call says why.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

#include "takeover_channel.hpp"

namespace hotswap::http::detail {

/// Where the old process's workers pass connections during an upgrade. Any
/// worker thread; the channel's messages go out one at a time.
class connection_handoff {
 public:
  void open(takeover_channel* channel) {
    std::lock_guard lock(mutex_);
    channel_ = channel;
  }
  /// Sends the socket `fd` (then closes this copy) and its unparsed bytes. A
  /// connection that cannot be sent (the new process is gone) is closed and counted.
  void pass(int fd, std::string unparsed) {
    std::lock_guard lock(mutex_);
    bool sent = false;
    if (channel_ != nullptr) try {
        channel_->send(takeover_kind::connection, unparsed, {fd});
        sent = true;
      } catch (const takeover_error&) {
      }
    ::close(fd);
    (sent ? passed_ : lost_).fetch_add(1, std::memory_order_relaxed);  // statistics; no partner
  }
  std::uint64_t passed() const noexcept { return passed_.load(std::memory_order_relaxed); }  // a statistic
  std::uint64_t lost() const noexcept { return lost_.load(std::memory_order_relaxed); }      // a statistic

 private:
  std::mutex mutex_;
  takeover_channel* channel_ = nullptr;
  std::atomic<std::uint64_t> passed_{0}, lost_{0};
};

/// An upgrade the admin call refuses or that failed: the HTTP status and why.
struct upgrade_refusal {
  int status;
  std::string message;
};

}  // namespace hotswap::http::detail
