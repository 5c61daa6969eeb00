// Reading a plugin file under a policy: what is checked is what gets loaded.
//
// The file is resolved, opened once, checked through that descriptor (fstat,
// and /proc/self/fd for where it really lives), and read whole into memory. The
// shadow copy is written from those bytes, so a file replaced, truncated or
// deleted after this point cannot change what is loaded, and the SHA-256 we
// log and check against the allow list is the hash of the code that runs.
//
//   source_policy p{.allowed_dir = "/srv/plugins", .sha256_allow = {"ab12..."}};
//   plugin_file f = read_plugin_file("/srv/plugins/calc.so", p);  // throws module_error
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "error.hpp"
#include "sha256.hpp"

namespace hotswap {

struct source_policy {
  /// Load only files whose real path (symlinks resolved) lies under this
  /// directory. Empty: anywhere (the registry requires it to be set).
  std::filesystem::path allowed_dir;
  /// Refuse files writable by group or others, files not owned by this
  /// process's effective user or root, and files whose mode grants their owner
  /// no read permission (checked even for root, whom the kernel lets read a
  /// mode-000 file). Turn off only for tests of other checks.
  bool check_permissions = true;
  /// SHA-256 digests (lowercase hex) a plugin must match. Empty: any content.
  std::vector<std::string> sha256_allow;
};

/// One plugin file, read once.
struct plugin_file {
  std::filesystem::path path;       ///< as requested
  std::filesystem::path real_path;  ///< symlinks resolved
  std::shared_ptr<const std::vector<std::byte>> bytes;
  std::int64_t mtime_ns = 0;
  std::string sha256;  ///< lowercase hex

  std::span<const std::byte> view() const noexcept { return {bytes->data(), bytes->size()}; }
};

/// Observes the steps of a load ("resolve", "open", "read", "shadow",
/// "dlopen", "startup", ...): tracing, and tests that act between two steps.
using trace_fn = std::function<void(std::string_view stage, const std::filesystem::path&)>;

namespace detail {

inline bool path_within(const std::filesystem::path& p, const std::filesystem::path& dir) {
  auto [d, q] = std::mismatch(dir.begin(), dir.end(), p.begin(), p.end());
  // "a/b/" iterates to a trailing empty element: ignore it.
  return (d == dir.end() || (std::next(d) == dir.end() && d->empty())) && q != p.end();
}

inline std::string errno_text(int e) { return std::strerror(e); }

inline module_errc errc_of_errno(int e) {
  switch (e) {
    case ENOENT:
    case ENOTDIR: return module_errc::not_found;
    case EACCES:
    case EPERM: return module_errc::permission_denied;
    default: return module_errc::io_error;
  }
}

struct fd_guard {
  int fd = -1;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
};

inline std::filesystem::path real_path_of(const std::filesystem::path& p) {
  char buf[PATH_MAX];
  if (::realpath(p.c_str(), buf) == nullptr) {
    const int e = errno;
    throw module_error(errc_of_errno(e), p, std::string(to_string(errc_of_errno(e))) + " (" + errno_text(e) + ")");
  }
  return buf;
}

}  // namespace detail

/// Throws module_error(hash_not_allowed) unless the policy admits `file`'s hash.
inline void check_allowed_hash(const plugin_file& file, const source_policy& policy) {
  if (policy.sha256_allow.empty()) return;
  if (std::find(policy.sha256_allow.begin(), policy.sha256_allow.end(), file.sha256) != policy.sha256_allow.end()) return;
  throw module_error(module_errc::hash_not_allowed, file.path,
                     "hash not allowed: sha256 " + file.sha256 + " is not on the allow list");
}

inline plugin_file read_plugin_file(const std::filesystem::path& path, const source_policy& policy,
                                    const trace_fn& trace = {}) {
  auto step = [&](std::string_view stage) {
    if (trace) trace(stage, path);
  };
  auto refuse = [&](module_errc code, const std::string& cause) { return module_error(code, path, cause); };

  step("resolve");
  plugin_file out;
  out.path = path;
  out.real_path = detail::real_path_of(path);
  std::filesystem::path allowed;
  if (!policy.allowed_dir.empty()) {
    allowed = detail::real_path_of(policy.allowed_dir);
    if (!detail::path_within(out.real_path, allowed))
      throw refuse(module_errc::outside_allowed_dir, "outside the allowed directory: resolves to " +
                                                         out.real_path.string() + ", not under " + allowed.string());
  }

  step("open");
  // O_NOFOLLOW: the last component cannot have become a symlink since realpath;
  // O_NONBLOCK: a FIFO planted here cannot hang us before fstat says what it is.
  detail::fd_guard fd{::open(out.real_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)};
  if (fd.fd < 0) {
    const int e = errno;
    if (e == ELOOP) throw refuse(module_errc::outside_allowed_dir, "became a symlink while being opened");
    throw refuse(detail::errc_of_errno(e), std::string(to_string(detail::errc_of_errno(e))) + " (" +
                                               detail::errno_text(e) + ")");
  }
  struct stat st{};
  if (::fstat(fd.fd, &st) != 0) throw refuse(module_errc::io_error, "fstat: " + detail::errno_text(errno));
  if (!S_ISREG(st.st_mode)) throw refuse(module_errc::not_regular_file, "not a regular file");
  if (!allowed.empty()) {
    // Where the descriptor really points: a directory above the file renamed
    // or swapped for a symlink between realpath and open shows up here.
    char buf[PATH_MAX];
    const std::string self = "/proc/self/fd/" + std::to_string(fd.fd);
    const ssize_t n = ::readlink(self.c_str(), buf, sizeof buf - 1);
    if (n <= 0 || !detail::path_within(std::filesystem::path(std::string(buf, static_cast<std::size_t>(n))), allowed))
      throw refuse(module_errc::outside_allowed_dir, "outside the allowed directory once opened");
  }
  if (policy.check_permissions) {
    const auto mode = st.st_mode & 07777;
    char octal[8];
    std::snprintf(octal, sizeof octal, "%04o", static_cast<unsigned>(mode));
    if (st.st_uid != ::geteuid() && st.st_uid != 0)
      throw refuse(module_errc::wrong_owner, "wrong owner: uid " + std::to_string(st.st_uid) +
                                                 " is neither this process's user nor root");
    if ((mode & (S_IWGRP | S_IWOTH)) != 0)
      throw refuse(module_errc::insecure_permissions,
                   std::string("insecure permissions: mode ") + octal + " lets group or others write it");
    if ((mode & S_IRUSR) == 0)
      throw refuse(module_errc::permission_denied,
                   std::string("permission denied: mode ") + octal + " grants its owner no read permission");
  }
  if (st.st_size == 0) throw refuse(module_errc::empty_file, "empty file (0 bytes)");

  auto bytes = std::make_shared<std::vector<std::byte>>(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  while (got < bytes->size()) {
    const ssize_t n = ::read(fd.fd, bytes->data() + got, bytes->size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw refuse(module_errc::io_error, "read: " + detail::errno_text(errno));
    if (n == 0)
      throw refuse(module_errc::truncated, "truncated: shrank from " + std::to_string(bytes->size()) + " to " +
                                               std::to_string(got) + " bytes while being read");
    got += static_cast<std::size_t>(n);
  }
  out.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  out.sha256 = sha256_hex(std::span<const std::byte>(*bytes));
  out.bytes = std::move(bytes);
  check_allowed_hash(out, policy);
  step("read");
  return out;
}

}  // namespace hotswap
