#include "takeover_channel.hpp"

#include <poll.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <hotswap/http/config.hpp>

namespace hotswap::http::detail {

namespace {

// Each datagram: this header, then up to chunk_bytes of the payload.
struct chunk_header {
  std::uint32_t kind;
  std::uint32_t last;  // 1 on the message's final chunk
};
constexpr std::size_t chunk_bytes = 32 * 1024;
constexpr std::size_t max_fds = 64;
constexpr std::size_t max_message = 64 * 1024 * 1024;

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

sockaddr_un address_of(const std::filesystem::path& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.native().size() >= sizeof a.sun_path) throw config_error(path.string() + ": path too long for a Unix socket");
  std::memcpy(a.sun_path, path.c_str(), path.native().size());
  return a;
}

// Waits until `fd` is readable or `limit` passes; false on timeout.
bool readable(int fd, std::chrono::milliseconds limit) {
  pollfd p{fd, POLLIN, 0};
  int rc;
  do rc = ::poll(&p, 1, static_cast<int>(limit.count()));
  while (rc < 0 && errno == EINTR);
  return rc > 0;
}

}  // namespace

const char* to_string(takeover_kind k) noexcept {
  switch (k) {
    case takeover_kind::hello: return "hello";
    case takeover_kind::failed: return "failed";
    case takeover_kind::state: return "state";
    case takeover_kind::loaded: return "loaded";
    case takeover_kind::listeners: return "listeners";
    case takeover_kind::ready: return "ready";
    case takeover_kind::connection: return "connection";
    case takeover_kind::done: return "done";
  }
  return "unknown";
}

takeover_channel::~takeover_channel() {
  if (fd_ >= 0) ::close(fd_);
}

void takeover_channel::send(takeover_kind kind, std::string_view payload, const std::vector<int>& fds) {
  if (fds.size() > max_fds) throw takeover_error("too many descriptors in one message");
  std::lock_guard lock(send_mutex_);
  std::size_t at = 0;
  do {
    const std::size_t n = std::min(chunk_bytes, payload.size() - at);
    const chunk_header h{static_cast<std::uint32_t>(kind), at + n == payload.size() ? 1u : 0u};
    iovec iov[2] = {{const_cast<chunk_header*>(&h), sizeof h}, {const_cast<char*>(payload.data() + at), n}};
    msghdr m{};
    m.msg_iov = iov;
    m.msg_iovlen = 2;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_fds)];
    if (at == 0 && !fds.empty()) {
      m.msg_control = control;
      m.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
      cmsghdr* c = CMSG_FIRSTHDR(&m);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t sent;
    do sent = ::sendmsg(fd_, &m, MSG_NOSIGNAL);
    while (sent < 0 && errno == EINTR);
    if (sent < 0) throw takeover_error(errno_text("takeover channel: send"));
    at += n;
  } while (at < payload.size());
}

takeover_message takeover_channel::receive(std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  takeover_message out;
  std::vector<char> buf(sizeof(chunk_header) + chunk_bytes);
  for (bool first = true;; first = false) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !readable(fd_, left)) throw takeover_error("takeover channel: no message within the time limit");
    iovec iov{buf.data(), buf.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_fds)];
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    ssize_t n;
    do n = ::recvmsg(fd_, &m, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0) throw takeover_error(errno_text("takeover channel: receive"));
    for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const std::size_t had = out.fds.size();
        out.fds.resize(had + count);
        std::memcpy(out.fds.data() + had, CMSG_DATA(c), count * sizeof(int));
      }
    auto refuse = [&](const std::string& why) {
      for (const int fd : out.fds) ::close(fd);
      return takeover_error("takeover channel: " + why);
    };
    if (n == 0) throw refuse("the other process closed the channel");
    if ((m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0 || static_cast<std::size_t>(n) < sizeof(chunk_header))
      throw refuse("malformed message");
    chunk_header h;
    std::memcpy(&h, buf.data(), sizeof h);
    if (h.kind < 1 || h.kind > static_cast<std::uint32_t>(takeover_kind::done)) throw refuse("unknown message kind");
    if (!first && static_cast<takeover_kind>(h.kind) != out.kind) throw refuse("interleaved messages");
    out.kind = static_cast<takeover_kind>(h.kind);
    out.payload.append(buf.data() + sizeof h, static_cast<std::size_t>(n) - sizeof h);
    if (out.payload.size() > max_message) throw refuse("message too long");
    if (h.last != 0) return out;
  }
}

takeover_message takeover_channel::expect(takeover_kind expected, std::chrono::milliseconds limit) {
  takeover_message m = receive(limit);
  if (m.kind == expected) return m;
  for (const int fd : m.fds) ::close(fd);
  if (m.kind == takeover_kind::failed) throw takeover_error(m.payload);
  throw takeover_error(std::string("takeover channel: expected ") + to_string(expected) + ", got " + to_string(m.kind));
}

ucred takeover_channel::peer() const {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd_, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) cred.pid = 0;
  return cred;
}

takeover_listener::takeover_listener(const std::filesystem::path& parent) {
  const std::filesystem::path base = parent.empty() ? std::filesystem::temp_directory_path() : parent;
  std::string pattern = (base / "hotswap-upgrade-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr)  // mode 0700, owned by us
    throw config_error(pattern + ": cannot create the takeover directory: " + std::strerror(errno));
  dir_ = pattern;
  socket_ = dir_ / "takeover.sock";
  const sockaddr_un a = address_of(socket_);
  fd_ = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd_ < 0 || ::bind(fd_, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 ||
      ::chmod(socket_.c_str(), 0600) != 0 || ::listen(fd_, 4) != 0) {
    const std::string why = std::strerror(errno);
    if (fd_ >= 0) ::close(fd_);
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
    throw config_error(socket_.string() + ": cannot listen for the new process: " + why);
  }
}

takeover_listener::~takeover_listener() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::optional<int> takeover_listener::accept_from(pid_t pid, std::chrono::milliseconds limit, std::string& refused) {
  if (!readable(fd_, limit)) return std::nullopt;
  const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (c < 0) return std::nullopt;
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid == ::geteuid() && cred.pid == pid)
    return c;
  refused = "refused a takeover connection from uid " + std::to_string(cred.uid) + " pid " + std::to_string(cred.pid) +
            " (expected uid " + std::to_string(::geteuid()) + " pid " + std::to_string(pid) + ")";
  ::close(c);
  return std::nullopt;
}

int connect_takeover(const std::filesystem::path& path, pid_t expected_pid) {
  auto refuse = [&](const std::string& why) { return takeover_error("takeover " + path.string() + ": " + why); };
  struct stat dir {}, sock {};
  const std::filesystem::path parent = path.parent_path().empty() ? "." : path.parent_path();
  if (::lstat(parent.c_str(), &dir) != 0) throw refuse(errno_text("its directory"));
  if (!S_ISDIR(dir.st_mode) || dir.st_uid != ::geteuid() || (dir.st_mode & 022) != 0)
    throw refuse("its directory must belong to this user (uid " + std::to_string(::geteuid()) +
                 ") and be writable by nobody else");
  if (::lstat(path.c_str(), &sock) != 0) throw refuse(errno_text("the socket"));
  if (!S_ISSOCK(sock.st_mode)) throw refuse("not a socket");
  if (sock.st_uid != ::geteuid() || (sock.st_mode & 077) != 0)
    throw refuse("the socket must belong to this user with mode 0600");
  const sockaddr_un a = address_of(path);
  const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    const std::string why = errno_text("connect");
    if (fd >= 0) ::close(fd);
    throw refuse(why);
  }
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != ::geteuid() || cred.pid != expected_pid) {
    ::close(fd);
    throw refuse("the listening process is uid " + std::to_string(cred.uid) + " pid " + std::to_string(cred.pid) +
                 ", not this user's server that started us (pid " + std::to_string(expected_pid) + ")");
  }
  return fd;
}

}  // namespace hotswap::http::detail
