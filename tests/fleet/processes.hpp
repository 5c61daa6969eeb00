// What the fleet tests start as real processes on 127.0.0.1: a child process
// with its output in a file, free loopback ports, a 3-member etcd cluster in
// a temporary directory, and a TCP relay that can cut a host off from etcd
// (a partition without root). Every wait is bounded.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace hotswap::fleet::testing {

namespace fs = std::filesystem;

/// A loopback port nobody listens on now (bound and released).
std::uint16_t free_port();

/// Waits (bounded) until `done` holds, polling every 20 ms.
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit);

class child {
 public:
  /// Starts `argv` with stdout and stderr appended to `log`; no other descriptor is inherited.
  child(std::vector<std::string> argv, fs::path log);
  ~child();  ///< SIGKILL and reap if it still runs
  child(const child&) = delete;
  child& operator=(const child&) = delete;
  void signal(int sig);
  /// Waits for the exit: exit status, 128 + signal, or -1 after `limit` (then killed).
  int wait(std::chrono::milliseconds limit);
  bool running();
  std::string output() const;  ///< the log so far
  pid_t pid() const noexcept { return pid_; }

 private:
  pid_t pid_ = -1;
  int status_ = 0;
  fs::path log_;
};

class etcd_cluster {
 public:
  explicit etcd_cluster(const fs::path& dir, int members = 3);
  /// "127.0.0.1:A,127.0.0.1:B,127.0.0.1:C"
  std::string endpoints() const;
  std::uint16_t client_port(int member) const { return client_ports_[static_cast<std::size_t>(member)]; }
  void kill(int member);
  /// True once a put succeeds through the gateway (bounded).
  bool wait_ready(std::chrono::milliseconds limit);

 private:
  std::vector<std::uint16_t> client_ports_, peer_ports_;
  std::vector<std::unique_ptr<child>> members_;
};

/// Forwards 127.0.0.1:port() to 127.0.0.1:target; cut() closes every
/// relayed connection and refuses new ones until heal().
class relay {
 public:
  explicit relay(std::uint16_t target);
  ~relay();
  std::uint16_t port() const noexcept { return port_; }
  void cut() { cut_.store(true, std::memory_order_relaxed); }     // a flag polled by every pump; no partner
  void heal() { cut_.store(false, std::memory_order_relaxed); }   // a flag; no partner

 private:
  void accept_loop();
  void pump(int a);
  std::uint16_t target_, port_ = 0;
  int listener_ = -1;
  std::atomic<bool> cut_{false}, stop_{false};
  std::vector<std::thread> threads_;  // the accept thread's alone until the destructor joins it
  std::thread acceptor_;
};

}  // namespace hotswap::fleet::testing
