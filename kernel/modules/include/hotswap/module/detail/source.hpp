// Reading a plugin file under a policy: what is checked is what gets loaded.
//
// The file is resolved, opened once, and everything after that goes through
// that one descriptor: fstat (owner, mode, size cap, device and inode),
// /proc/self/fd (where it really lives), and one read of its bytes into memory.
// The SHA-256 we log and check against the allow list, the ELF and metadata
// checks and the seal are computed on those bytes; the shadow copy (file or
// memfd) is written from them, and in-place mode loads the same descriptor
// through /proc/self/fd/N and verifies afterwards that the inode was not
// written in between. A file replaced, renamed over, truncated or deleted after
// the open cannot change what is loaded.
//
// The directory is checked like sshd's StrictModes: the allowed directory and
// every directory above the file up to / must be owned by root or by us, and
// none may be writable by group or others, except a root-owned sticky parent
// (such as /tmp), where nobody can rename another user's entry. Otherwise
// another user could swap a directory or a symlink in (a downgrade to an old
// root-owned build, say).
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
#include <new>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <hotswap/unique_fd.hpp>

#include "elf_check.hpp"
#include <hotswap/module/error.hpp>
#include "../sha256.hpp"
#include "../loader_options.hpp"
#include "../path_policy.hpp"
#include "../plugin_file.hpp"
#include "../source_policy.hpp"

namespace hotswap::modules::detail {

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

inline std::filesystem::path real_path_of(const std::filesystem::path& p) {
  char buf[PATH_MAX];
  if (::realpath(p.c_str(), buf) == nullptr) {
    const int e = errno;
    throw module_error(errc_of_errno(e), p, std::string(to_string(errc_of_errno(e))) + " (" + errno_text(e) + ")");
  }
  return buf;
}

inline std::int64_t ns_of(const struct timespec& t) {
  return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

inline std::string octal_mode(mode_t mode) {
  char octal[8];
  std::snprintf(octal, sizeof octal, "%04o", static_cast<unsigned>(mode & 07777));
  return octal;
}

/// StrictModes: `dir` (the allowed directory or one inside it) and every
/// directory above it. nullopt if no other user can change what lies below.
inline std::optional<load_problem> check_directory_chain(const std::filesystem::path& dir,
                                                         const std::filesystem::path& allowed) {
  const uid_t me = ::geteuid();
  for (std::filesystem::path d = dir;; d = d.parent_path()) {
    struct stat st{};
    if (::lstat(d.c_str(), &st) != 0) return load_problem{module_errc::io_error, "stat " + d.string() + ": " + errno_text(errno)};
    if (!S_ISDIR(st.st_mode)) return load_problem{module_errc::outside_allowed_dir, d.string() + " is not a directory"};
    if (st.st_uid != me && st.st_uid != 0)
      return load_problem{module_errc::wrong_owner, "wrong owner: directory " + d.string() + " is owned by uid " +
                                                        std::to_string(st.st_uid) + ", neither this process's user nor root"};
    const bool inside = path_within(d, allowed) || d == allowed;
    const bool sticky_root = (st.st_mode & S_ISVTX) != 0 && st.st_uid == 0;
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (inside || !sticky_root))
      return load_problem{module_errc::insecure_permissions, "insecure permissions: directory " + d.string() + " has mode " +
                                                                 octal_mode(st.st_mode) +
                                                                 ": group or others could replace what it holds"};
    if (d == d.root_path() || d.empty()) return std::nullopt;
  }
}

/// Throws module_error(hash_not_allowed) unless the policy admits `file`'s hash.
inline void check_allowed_hash(const plugin_file& file, const source_policy& policy) {
  if (policy.sha256_allow.empty()) return;
  if (std::find(policy.sha256_allow.begin(), policy.sha256_allow.end(), file.sha256) != policy.sha256_allow.end()) return;
  throw module_error(module_errc::hash_not_allowed, file.path,
                     "hash not allowed: sha256 " + file.sha256 + " is not on the allow list");
}

inline plugin_file read_plugin_file_unguarded(const std::filesystem::path& path, const source_policy& policy,
                                              const trace_fn& trace) {
  auto step = [&](std::string_view stage) {
    if (trace) trace(stage, path);
  };
  auto refuse = [&](module_errc code, const std::string& cause) { return module_error(code, path, cause); };

  step("resolve");
  plugin_file out;
  out.path = path;
  out.real_path = real_path_of(path);
  std::filesystem::path allowed;
  if (!policy.allowed_dir.empty()) {
    allowed = real_path_of(policy.allowed_dir);
    if (!path_within(out.real_path, allowed))
      throw refuse(module_errc::outside_allowed_dir, "outside the allowed directory: resolves to " +
                                                         out.real_path.string() + ", not under " + allowed.string());
  }

  step("open");
  // O_NOFOLLOW: the last component cannot have become a symlink since realpath;
  // O_NONBLOCK: a FIFO planted here cannot hang us before fstat says what it is.
  auto fd = std::make_shared<hotswap::unique_fd>(::open(out.real_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!*fd) {
    const int e = errno;
    if (e == ELOOP) throw refuse(module_errc::outside_allowed_dir, "became a symlink while being opened");
    throw refuse(errc_of_errno(e), std::string(to_string(errc_of_errno(e))) + " (" + errno_text(e) + ")");
  }
  struct stat st{};
  if (::fstat(fd->get(), &st) != 0) throw refuse(module_errc::io_error, "fstat: " + errno_text(errno));
  if (!S_ISREG(st.st_mode)) throw refuse(module_errc::not_regular_file, "not a regular file");
  if (!allowed.empty()) {
    // Where the descriptor really points: a directory above the file renamed
    // or swapped for a symlink between realpath and open shows up here.
    char buf[PATH_MAX];
    const std::string self = "/proc/self/fd/" + std::to_string(fd->get());
    const ssize_t n = ::readlink(self.c_str(), buf, sizeof buf - 1);
    const std::filesystem::path where = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
    if (n <= 0 || !path_within(where, allowed))
      throw refuse(module_errc::outside_allowed_dir, "outside the allowed directory once opened");
    if (policy.check_permissions)
      if (auto p = check_directory_chain(where.parent_path(), allowed)) throw refuse(p->code, p->cause);
  }
  if (policy.check_permissions) {
    const auto mode = st.st_mode & 07777;
    if (st.st_uid != ::geteuid() && st.st_uid != 0)
      throw refuse(module_errc::wrong_owner, "wrong owner: uid " + std::to_string(st.st_uid) +
                                                 " is neither this process's user nor root");
    if ((mode & (S_IWGRP | S_IWOTH)) != 0)
      throw refuse(module_errc::insecure_permissions,
                   "insecure permissions: mode " + octal_mode(mode) + " lets group or others write it");
    if ((mode & S_IRUSR) == 0)
      throw refuse(module_errc::permission_denied,
                   "permission denied: mode " + octal_mode(mode) + " grants its owner no read permission");
  }
  if (st.st_size == 0) throw refuse(module_errc::empty_file, "empty file (0 bytes)");
  if (static_cast<std::uint64_t>(st.st_size) > policy.max_file_size)
    throw refuse(module_errc::too_large, "too large: " + std::to_string(st.st_size) + " bytes, the limit is " +
                                             std::to_string(policy.max_file_size) + " (nothing was read)");

  auto bytes = std::make_shared<std::vector<std::byte>>(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  while (got < bytes->size()) {
    const ssize_t n = ::pread(fd->get(), bytes->data() + got, bytes->size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw refuse(module_errc::io_error, "read: " + errno_text(errno));
    if (n == 0)
      throw refuse(module_errc::truncated, "truncated: shrank from " + std::to_string(bytes->size()) + " to " +
                                               std::to_string(got) + " bytes while being read");
    got += static_cast<std::size_t>(n);
  }
  out.mtime_ns = ns_of(st.st_mtim);
  out.device = st.st_dev;
  out.inode = st.st_ino;
  out.sha256 = sha256_hex(std::span<const std::byte>(*bytes));
  out.bytes = std::move(bytes);
  out.fd = std::move(fd);
  check_allowed_hash(out, policy);
  step("read");
  return out;
}

/// Reads and checks `path` under `policy`. Throws module_error; running out
/// of memory or descriptors is a module_error too (resource_exhausted).
inline plugin_file read_plugin_file(const std::filesystem::path& path, const source_policy& policy,
                                    const trace_fn& trace = {}) {
  try {
    return detail::read_plugin_file_unguarded(path, policy, trace);
  } catch (const std::bad_alloc&) {
    throw module_error(module_errc::resource_exhausted, path, "resource exhausted: out of memory while reading");
  }
}

/// True if the file behind `f.fd` was not written or truncated since `f` was read. (Its ctime
/// is not compared: renaming another file over its name, or a chmod, change it but not its bytes.
/// Only its owner, whom the policy already trusts, could reset an mtime.)
inline bool unchanged_since_read(const plugin_file& f) {
  struct stat st{};
  if (!f.fd || ::fstat(f.fd->get(), &st) != 0) return false;
  return static_cast<std::size_t>(st.st_size) == f.bytes->size() && detail::ns_of(st.st_mtim) == f.mtime_ns;
}

}  // namespace hotswap::modules::detail
