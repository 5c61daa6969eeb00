// Living within the descriptor limit (RLIMIT_NOFILE).
//
// Every connection costs a descriptor, and so do things no client sees: the
// listeners and event loops, the admin side, a swap's shadow copy and its
// preflight child's pipes, the watcher, the log. So the connection cap,
// unless given, is what the limit leaves after the descriptors open at start
// and a reserve for the rest (connection_cap()).
//
// When descriptors run out anyway (an explicit cap over the limit, plugins
// opening files, another process on a full system table), accept() fails with
// EMFILE or ENFILE and leaves the connection in the listen backlog: the
// listener stays readable, and re-arming at once spins a core while nobody is
// served. Linux even fails accept() with EMFILE when nobody is waiting, so an
// accept attempted "just in case" fails too. So each listener keeps one spare
// descriptor (accept_backoff). On EMFILE/ENFILE it closes the spare, accepts
// the waiting connections one by one, answers each 503 and closes it, takes
// the spare back, and then waits until the listener is readable (a new
// connection) before it accepts again: the backlog drains instead of
// spinning, and the first connection after a descriptor frees up is served.
// When the spare cannot be taken back (another thread, or on ENFILE another
// process, got the freed descriptor) the listener pauses for
// pause_after_exhaustion instead, as nginx does every time (500 ms).
// An episode is counted (descriptor_exhaustion, in /metrics) and logged once
// when it begins and once when it ends.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string_view>

namespace hotswap::http::detail {

namespace net = boost::asio;

/// The answer of a connection turned away before its request was read: over
/// the connection cap, or shed while out of descriptors.
inline constexpr std::string_view busy_answer =
    "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nX-Hotswap-Version: 0\r\nContent-Length: 0\r\n\r\n";

/// Writes busy_answer to a just-accepted socket (best effort: its send buffer
/// is empty) and closes it.
template <class Socket>
void turn_away(Socket& socket) {
  boost::system::error_code ignored;
  socket.non_blocking(true, ignored);
  socket.write_some(net::buffer(busy_answer), ignored);
  socket.close(ignored);
}

/// The default connection cap: RLIMIT_NOFILE's soft limit minus the
/// descriptors open now minus a reserve of max(64, limit / 8). At least 1.
/// `limit` receives the soft limit it read.
std::size_t connection_cap(std::size_t& limit);

/// Process-wide: accepts that failed for want of a descriptor, connections
/// shed meanwhile, and whether the process is out of descriptors now.
class descriptor_exhaustion {
 public:
  /// An accept on `listener` failed with EMFILE/ENFILE `ec`. Logged when an episode begins.
  void failed(const boost::system::error_code& ec, const char* listener) {
    failures_.fetch_add(1, std::memory_order_relaxed);  // a statistic; no partner
    // Relaxed: a flag that picks who logs; it publishes nothing.
    if (!exhausted_.exchange(true, std::memory_order_relaxed))
      std::fprintf(stderr,
                   "hotswap-httpd: accept on the %s listener failed: %s; answering new connections 503 until a "
                   "descriptor frees up\n",
                   listener, ec.message().c_str());
  }
  void shed() { shed_.fetch_add(1, std::memory_order_relaxed); }  // a statistic; no partner
  /// An accept succeeded: ends an episode (logged). One relaxed load when there is none.
  void accepted() {
    if (exhausted_.load(std::memory_order_relaxed) && exhausted_.exchange(false, std::memory_order_relaxed))
      std::fprintf(stderr, "hotswap-httpd: accepting again (%llu accepts failed for want of a descriptor so far)\n",
                   static_cast<unsigned long long>(failures()));
  }
  std::uint64_t failures() const noexcept { return failures_.load(std::memory_order_relaxed); }  // statistic
  std::uint64_t shed_connections() const noexcept { return shed_.load(std::memory_order_relaxed); }  // statistic

 private:
  std::atomic<std::uint64_t> failures_{0}, shed_{0};
  std::atomic<bool> exhausted_{false};
};

/// How long a listener waits when it could not shed a connection.
inline constexpr std::chrono::milliseconds pause_after_exhaustion{100};
/// Connections shed in one go before the event loop's other work gets a turn.
inline constexpr int max_shed_at_once = 64;

/// One listener's spare descriptor and pause timer. Used on the listener's
/// executor only.
class accept_backoff {
 public:
  accept_backoff(const net::any_io_executor& ex, descriptor_exhaustion& counts) : pause_(ex), counts_(counts) {
    take_spare();
  }
  ~accept_backoff() {
    if (spare_ >= 0) ::close(spare_);
  }
  accept_backoff(const accept_backoff&) = delete;
  accept_backoff& operator=(const accept_backoff&) = delete;

  /// After a failed accept. False: not for want of a descriptor (go on as
  /// usual). Else sheds the waiting connections and calls `resume` (to accept
  /// again) when the next one arrives, or after a pause when it could not.
  template <class Acceptor, class Resume>
  bool handle(const boost::system::error_code& ec, Acceptor& acceptor, const char* listener, Resume resume) {
    if (ec != net::error::no_descriptors && ec != boost::system::errc::too_many_files_open_in_system) return false;
    counts_.failed(ec, listener);
    auto resume_unless_stopped = [resume = std::move(resume)](const boost::system::error_code& e) mutable {
      if (!e) resume();  // else: the listener closed, or cancel()
    };
    switch (shed_waiting(acceptor)) {
      case backlog::not_empty: net::post(pause_.get_executor(), [r = std::move(resume_unless_stopped)]() mutable { r({}); }); break;
      case backlog::empty: acceptor.async_wait(net::socket_base::wait_read, std::move(resume_unless_stopped)); break;
      case backlog::unknown:
        pause_.expires_after(pause_after_exhaustion);
        pause_.async_wait(std::move(resume_unless_stopped));
        break;
    }
    return true;
  }
  /// At stop (with the listener closed): a pending pause ends without resuming.
  void cancel() { pause_.cancel(); }

 private:
  void take_spare() { spare_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC); }

  enum class backlog { empty, not_empty, unknown };

  // Sheds the connections waiting in the backlog (up to max_shed_at_once)
  // with the spare descriptor, and says what is left.
  template <class Acceptor>
  backlog shed_waiting(Acceptor& acceptor) {
    if (spare_ < 0) {
      take_spare();
      return backlog::unknown;
    }
    ::close(spare_);
    boost::system::error_code ec;
    acceptor.non_blocking(true, ec);  // nobody waiting: would_block, not a blocked loop
    for (int n = 0; n < max_shed_at_once; ++n) {
      auto socket = acceptor.accept(ec);
      if (ec == net::error::connection_aborted) continue;  // gone before we got to it
      if (ec) break;
      turn_away(socket);
      counts_.shed();
    }
    take_spare();
    if (spare_ < 0) return backlog::unknown;
    if (!ec) return backlog::not_empty;
    return ec == net::error::would_block || ec == net::error::try_again ? backlog::empty : backlog::unknown;
  }

  int spare_ = -1;
  net::steady_timer pause_;
  descriptor_exhaustion& counts_;
};

}  // namespace hotswap::http::detail
