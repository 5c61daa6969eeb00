#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <hotswap/http/probe_client.hpp>

namespace hotswap::http {

const char* to_string(probe_error e) noexcept {
  switch (e) {
    case probe_error::none: return "none";
    case probe_error::connect: return "connect";
    case probe_error::write: return "write";
    case probe_error::read: return "read";
    case probe_error::timeout: return "timeout";
  }
  return "?";
}

std::string probe_reply::header(const std::string& name) const {
  const auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

std::uint64_t probe_reply::version() const {
  const std::string v = header("x-hotswap-version");
  std::uint64_t n = 0;
  std::from_chars(v.data(), v.data() + v.size(), n);
  return n;
}

probe_client::probe_client(std::uint16_t port, std::chrono::milliseconds timeout) : port_(port), timeout_(timeout) {}
probe_client::~probe_client() { close(); }

void probe_client::close() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  buffer_.clear();
}

probe_error probe_client::connect() {
  close();
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return probe_error::connect;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port_);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    close();
    return probe_error::connect;
  }
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return probe_error::none;
}

probe_error probe_client::send(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return probe_error::write;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return probe_error::none;
}

probe_error probe_client::fill() {
  pollfd p{fd_, POLLIN, 0};
  const int ready = ::poll(&p, 1, static_cast<int>(timeout_.count()));
  if (ready == 0) return probe_error::timeout;
  if (ready < 0) return probe_error::read;
  char chunk[16384];
  const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
  if (n <= 0) return probe_error::read;
  buffer_.append(chunk, static_cast<std::size_t>(n));
  return probe_error::none;
}

probe_error probe_client::receive(probe_reply& out) {
  out = {};
  std::size_t end;
  while ((end = buffer_.find("\r\n\r\n")) == std::string::npos)
    if (const auto e = fill(); e != probe_error::none) return e;
  const std::string_view head(buffer_.data(), end);
  // "HTTP/1.1 200 OK"
  const auto sp = head.find(' ');
  if (sp == std::string_view::npos) return probe_error::read;
  std::from_chars(head.data() + sp + 1, head.data() + head.size(), out.status);
  std::size_t line = head.find("\r\n");
  while (line != std::string_view::npos && line < head.size()) {
    const std::size_t next = head.find("\r\n", line + 2);
    const std::string_view field = head.substr(line + 2, (next == std::string_view::npos ? head.size() : next) - line - 2);
    const auto colon = field.find(':');
    if (colon != std::string_view::npos) {
      std::string name(field.substr(0, colon));
      for (char& c : name) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
      std::string_view value = field.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      out.headers[name] = std::string(value);
    }
    line = next;
  }
  std::size_t length = 0;
  const std::string cl = out.header("content-length");
  std::from_chars(cl.data(), cl.data() + cl.size(), length);
  while (buffer_.size() < end + 4 + length)
    if (const auto e = fill(); e != probe_error::none) return e;
  out.body = buffer_.substr(end + 4, length);
  buffer_.erase(0, end + 4 + length);
  return probe_error::none;
}

bool probe_client::closed_by_peer() {
  for (;;) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout_.count())) <= 0) return false;
    char chunk[4096];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) return true;  // end of file, or reset
  }
}

probe_error probe_client::exchange(std::string_view request, probe_reply& out) {
  if (fd_ < 0)
    if (const auto e = connect(); e != probe_error::none) return e;
  if (const auto e = send(request); e != probe_error::none) return e;
  return receive(out);
}

std::string probe_client::get(std::string_view target, std::string_view extra_headers) {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + std::string(extra_headers) + "\r\n";
}

std::string probe_client::post(std::string_view target, std::string_view body, std::string_view extra_headers) {
  return "POST " + std::string(target) + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
         std::string(extra_headers) + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
         std::string(body);
}

}  // namespace hotswap::http
