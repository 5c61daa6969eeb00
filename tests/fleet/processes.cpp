#include "processes.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <hotswap/fleet/etcd_client.hpp>
#include <sstream>
#include <stdexcept>

namespace hotswap::fleet::testing {

namespace {

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

}  // namespace

std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = loopback(0);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("free_port: no loopback port");
  ::close(fd);
  return ntohs(a.sin_port);
}

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

child::child(std::vector<std::string> args, fs::path log) : log_(std::move(log)) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int out = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (out < 0) throw std::runtime_error("cannot open " + log_.string());
  pid_ = ::fork();
  if (pid_ == 0) {  // only async-signal-safe calls from here to exec
    ::dup2(out, STDOUT_FILENO);
    ::dup2(out, STDERR_FILENO);
    ::close_range(3, ~0u, 0);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out);
  if (pid_ < 0) throw std::runtime_error("fork failed");
}

child::~child() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status_, 0);
  }
}

void child::signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

bool child::running() {
  if (pid_ <= 0) return false;
  if (::waitpid(pid_, &status_, WNOHANG) == pid_) pid_ = -1;
  return pid_ > 0;
}

int child::wait(std::chrono::milliseconds limit) {
  if (!eventually([this] { return !running(); }, limit)) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status_, 0);
    pid_ = -1;
    return -1;
  }
  if (WIFEXITED(status_)) return WEXITSTATUS(status_);
  return WIFSIGNALED(status_) ? 128 + WTERMSIG(status_) : -1;
}

std::string child::output() const {
  std::ifstream in(log_);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

etcd_cluster::etcd_cluster(const fs::path& dir, int members) {
  std::string initial;
  for (int i = 0; i < members; ++i) {
    client_ports_.push_back(free_port());
    peer_ports_.push_back(free_port());
    initial += (i ? "," : "") + ("m" + std::to_string(i)) + "=http://127.0.0.1:" + std::to_string(peer_ports_.back());
  }
  for (int i = 0; i < members; ++i) {
    const std::string name = "m" + std::to_string(i);
    const std::string client = "http://127.0.0.1:" + std::to_string(client_ports_[static_cast<std::size_t>(i)]);
    const std::string peer = "http://127.0.0.1:" + std::to_string(peer_ports_[static_cast<std::size_t>(i)]);
    // Short heartbeats and elections: a killed leader is replaced in about a second.
    members_.push_back(std::make_unique<child>(
        std::vector<std::string>{HOTSWAP_ETCD, "--name", name, "--data-dir", (dir / name).string(),
                                 "--listen-client-urls", client, "--advertise-client-urls", client,
                                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                                 "--initial-cluster", initial, "--initial-cluster-state", "new",
                                 "--initial-cluster-token", dir.filename().string(), "--heartbeat-interval", "50",
                                 "--election-timeout", "500", "--log-level", "warn", "--logger", "zap"},
        dir / (name + ".log")));
  }
}

std::string etcd_cluster::endpoints() const {
  std::string out;
  for (std::uint16_t p : client_ports_) out += (out.empty() ? "" : ",") + ("127.0.0.1:" + std::to_string(p));
  return out;
}

void etcd_cluster::kill(int member) { members_[static_cast<std::size_t>(member)].reset(); }

bool etcd_cluster::wait_ready(std::chrono::milliseconds limit) {
  etcd_client c(parse_endpoints(endpoints()), std::chrono::milliseconds(500));
  return eventually(
      [&] {
        try {
          c.put("/hotswap/test/ready", "1");
          return true;
        } catch (const etcd_error&) {
          return false;
        }
      },
      limit);
}

relay::relay(std::uint16_t target) : target_(target) {
  listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = loopback(0);
  socklen_t len = sizeof a;
  if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listener_, 64) != 0 ||
      ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("relay: cannot listen");
  port_ = ntohs(a.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

relay::~relay() {
  stop_.store(true, std::memory_order_relaxed);  // a flag; no partner
  acceptor_.join();
  for (auto& t : threads_) t.join();
  ::close(listener_);
}

void relay::accept_loop() {
  while (!stop_.load(std::memory_order_relaxed)) {  // a flag; no partner
    pollfd p{listener_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    const int in = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (in < 0) continue;
    if (cut_.load(std::memory_order_relaxed)) {  // a flag; no partner
      ::close(in);
      continue;
    }
    threads_.emplace_back([this, in] { pump(in); });
  }
}

// Copies bytes both ways until either side closes, the relay is cut or stopped.
void relay::pump(int a) {
  const int b = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in to = loopback(target_);
  if (b < 0 || ::connect(b, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    ::close(a);
    if (b >= 0) ::close(b);
    return;
  }
  char buf[16384];
  while (!stop_.load(std::memory_order_relaxed) && !cut_.load(std::memory_order_relaxed)) {  // flags; no partner
    pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    if (::poll(p, 2, 50) <= 0) continue;
    bool closed = false;
    for (int i = 0; i < 2 && !closed; ++i) {
      if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t n = ::read(p[i].fd, buf, sizeof buf);
      closed = n <= 0 || ::send(p[1 - i].fd, buf, static_cast<std::size_t>(n), MSG_NOSIGNAL) != n;
    }
    if (closed) break;
  }
  ::close(a);
  ::close(b);
}

}  // namespace hotswap::fleet::testing
