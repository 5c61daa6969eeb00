// Shadow copies: load a private copy of a plugin, never the file itself.
//
// The original can then be overwritten, truncated or deleted at any time (an
// operator uploading the next build) without touching the mapped code. Each
// loaded version gets its own copy under a name that is never used twice:
//
//   hs.<pid>.<serial>.<mtime ns>.<size>.<sha256 prefix>.<original name>
//
// written with O_EXCL and fsync into a private directory (mode 0700, ours). A
// unique name matters: glibc's dlopen returns an already-loaded object when the
// name, or the file's device and inode, match one still mapped, so a reused
// name or a recycled inode would silently hand back old code. That is also why
// a quarantined copy (its library stayed mapped after dlclose) is never
// deleted: its inode must stay taken.
//
// Modes: `file` (default); `memory`, a sealed memfd loaded through
// /proc/self/fd/N (nothing on disk; the fd stays open while the code is mapped,
// so the name cannot be reused); `in_place`, the original path itself, for
// debuggers (then one path can be loaded only once at a time).
//
// Copies are removed when their version is unloaded, and copies left by dead
// processes are removed when a store opens its directory.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <utility>

#include "error.hpp"
#include "source.hpp"

namespace hotswap {

enum class shadow_mode { file, memory, in_place };

struct shadow_options {
  shadow_mode mode = shadow_mode::file;
  /// Private directory for `file` mode. Empty: $XDG_RUNTIME_DIR/hotswap, else
  /// <temp>/hotswap-<euid>. Must be on a filesystem that allows exec mappings.
  std::filesystem::path dir;
  /// fsync each copy before dlopen. Off saves the flush on disk-backed
  /// directories; the copy is private and re-made after a crash anyway.
  bool fsync = true;
};

class shadow_store;

/// One loadable copy. Move-only. release() after dlclose says whether the code
/// left the process: if so the copy goes, if not it is kept forever.
class shadow_copy {
 public:
  shadow_copy() = default;
  shadow_copy(shadow_copy&& o) noexcept
      : store_(std::exchange(o.store_, nullptr)), load_path_(std::move(o.load_path_)), file_(std::move(o.file_)),
        fd_(std::exchange(o.fd_, -1)) {}
  shadow_copy& operator=(shadow_copy&& o) noexcept {
    if (this != &o) {
      release(true);
      store_ = std::exchange(o.store_, nullptr);
      load_path_ = std::move(o.load_path_);
      file_ = std::move(o.file_);
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  shadow_copy(const shadow_copy&) = delete;
  ~shadow_copy() { release(true); }

  /// What to dlopen, and what to probe with RTLD_NOLOAD after dlclose.
  const std::string& load_path() const noexcept { return load_path_; }

  /// unmapped: remove the copy (or close the memfd, or free the in-place path).
  /// Otherwise quarantine: keep the file, fd and path taken for good.
  inline void release(bool unmapped) noexcept;

 private:
  friend class shadow_store;
  shadow_store* store_ = nullptr;
  std::string load_path_;
  std::filesystem::path file_;  // file mode: the copy; in_place: the original
  int fd_ = -1;                 // memory mode
};

class shadow_store {
 public:
  explicit shadow_store(shadow_options options) : options_(std::move(options)) {
    if (options_.mode != shadow_mode::file) return;
    if (options_.dir.empty()) options_.dir = default_dir();
    open_dir();
    remove_stale();
  }
  shadow_store(const shadow_store&) = delete;
  shadow_store& operator=(const shadow_store&) = delete;

  const shadow_options& options() const noexcept { return options_; }
  const std::filesystem::path& dir() const noexcept { return options_.dir; }
  std::size_t stale_removed() const noexcept { return stale_removed_; }

  /// True if `name` is one of our copies' names (and then its creator's pid).
  static bool parse_name(std::string_view name, pid_t* pid = nullptr) {
    if (!name.starts_with("hs.")) return false;
    name.remove_prefix(3);
    std::uint64_t fields[4];
    for (std::uint64_t& f : fields) {  // pid, serial, mtime, size
      auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), f);
      if (ec != std::errc() || end == name.data() || end == name.data() + name.size() || *end != '.') return false;
      name.remove_prefix(static_cast<std::size_t>(end - name.data()) + 1);
    }
    if (name.size() < 18 || name[16] != '.') return false;
    for (char c : name.substr(0, 16))
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    if (pid != nullptr) *pid = static_cast<pid_t>(fields[0]);
    return true;
  }

  /// A private, loadable copy of `f`. Throws module_error(shadow_failed / path_busy).
  shadow_copy place(const plugin_file& f) {
    shadow_copy c;
    c.store_ = this;
    switch (options_.mode) {
      case shadow_mode::in_place: {
        std::lock_guard lock(mutex_);
        if (!in_place_.insert(f.real_path.string()).second)
          throw module_error(module_errc::path_busy, f.path,
                             "path already loaded: with shadow copies off a path can be loaded once at a time "
                             "(dlopen would return the mapped one)");
        c.file_ = f.real_path;
        c.load_path_ = f.real_path.string();
        return c;
      }
      case shadow_mode::memory: {
        const std::string name = "hs." + f.path.filename().string();
        c.fd_ = ::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (c.fd_ < 0) fail(f, "memfd_create");
        write_all(c.fd_, f);
        // Sealed: nobody can change the bytes behind the mapping.
        if (::fcntl(c.fd_, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) fail(f, "seal");
        c.load_path_ = "/proc/self/fd/" + std::to_string(c.fd_);
        return c;
      }
      case shadow_mode::file: break;
    }
    for (int attempt = 0;; ++attempt) {
      const std::filesystem::path p = options_.dir / name_for(f);
      // O_EXCL: a name is never reused, not even one left by another store in this process.
      const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0500);
      if (fd < 0 && errno == EEXIST && attempt < 16) continue;
      if (fd < 0) fail(f, "create " + p.string());
      c.file_ = p;  // from here on, c's destructor removes it on failure
      c.load_path_ = p.string();
      detail::fd_guard guard{fd};
      write_all(fd, f);
      if (options_.fsync && ::fsync(fd) != 0) fail(f, "fsync " + p.string());
      return c;
    }
  }

 private:
  friend class shadow_copy;

  static std::filesystem::path default_dir() {
    if (const char* run = std::getenv("XDG_RUNTIME_DIR"); run != nullptr && *run == '/')
      return std::filesystem::path(run) / "hotswap";
    return std::filesystem::temp_directory_path() / ("hotswap-" + std::to_string(::geteuid()));
  }

  [[noreturn]] static void fail(const plugin_file& f, const std::string& what) {
    throw module_error(module_errc::shadow_failed, f.path,
                       "shadow copy failed: " + what + ": " + detail::errno_text(errno));
  }

  static void write_all(int fd, const plugin_file& f) {
    const std::byte* p = f.bytes->data();
    std::size_t left = f.bytes->size();
    while (left != 0) {
      const ssize_t n = ::write(fd, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail(f, "write");
      p += n;
      left -= static_cast<std::size_t>(n);
    }
  }

  std::string name_for(const plugin_file& f) {
    // serial_: relaxed, only the RMW's atomicity matters (unique numbers); no partner.
    return "hs." + std::to_string(::getpid()) + "." + std::to_string(serial_.fetch_add(1, std::memory_order_relaxed)) +
           "." + std::to_string(f.mtime_ns) + "." + std::to_string(f.bytes->size()) + "." + f.sha256.substr(0, 16) +
           "." + f.path.filename().string();
  }

  // The directory must be ours and closed to others: anyone who can write
  // into it can plant code we would load.
  void open_dir() {
    const auto& d = options_.dir;
    if (::mkdir(d.c_str(), 0700) != 0 && errno != EEXIST)
      throw module_error(module_errc::shadow_failed, d, "cannot create shadow directory: " + detail::errno_text(errno));
    struct stat st{};
    if (::lstat(d.c_str(), &st) != 0)
      throw module_error(module_errc::shadow_failed, d, "cannot stat shadow directory: " + detail::errno_text(errno));
    if (!S_ISDIR(st.st_mode)) throw module_error(module_errc::shadow_failed, d, "shadow directory is not a directory");
    if (st.st_uid != ::geteuid())
      throw module_error(module_errc::wrong_owner, d, "shadow directory is owned by uid " + std::to_string(st.st_uid));
    if ((st.st_mode & 022) != 0)
      throw module_error(module_errc::insecure_permissions, d, "shadow directory is writable by group or others");
  }

  // Only names in our scheme, only regular files of ours, only if their
  // creator is gone: another live process (or store) may share the directory.
  void remove_stale() {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(options_.dir, ec)) {
      pid_t pid = 0;
      if (!parse_name(entry.path().filename().string(), &pid)) continue;
      struct stat st{};
      if (::lstat(entry.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid()) continue;
      if (pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
      if (::unlink(entry.path().c_str()) == 0) ++stale_removed_;
    }
  }

  shadow_options options_;
  std::atomic<std::uint64_t> serial_{0};
  std::size_t stale_removed_ = 0;
  std::mutex mutex_;
  std::set<std::string> in_place_;  // guarded by mutex_
};

inline void shadow_copy::release(bool unmapped) noexcept {
  if (store_ == nullptr) return;
  if (unmapped) {
    if (fd_ >= 0) ::close(fd_);
    if (store_->options_.mode == shadow_mode::file && !file_.empty()) ::unlink(file_.c_str());
    if (store_->options_.mode == shadow_mode::in_place) {
      std::lock_guard lock(store_->mutex_);
      store_->in_place_.erase(file_.string());
    }
  }
  // else quarantined: the fd, the file and the in-place path stay taken.
  store_ = nullptr;
  fd_ = -1;
}

}  // namespace hotswap
