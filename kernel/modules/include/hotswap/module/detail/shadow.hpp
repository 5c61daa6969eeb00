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
// /proc/self/fd/N (nothing on disk); `in_place`, the checked file's own
// descriptor loaded through /proc/self/fd/N, for debuggers (the inode must not
// change before dlopen returns: checked afterwards; one inode, however many
// hard links name it, can be loaded once at a time).
//
// glibc also matches a dlopen name against the names of objects still loaded,
// so a /proc/self/fd/N whose library stayed mapped is "burned": its number is
// never used for a load path again, while the descriptor itself is closed
// (the mapping keeps the inode alive, so its identity cannot be reused either).
//
// Copies are removed when their version is unloaded, and copies left by dead
// processes are removed when a store opens its directory. Names are cut to fit
// NAME_MAX (file) and the memfd name limit, however long the original's name.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <utility>

#include <hotswap/unique_fd.hpp>

#include <hotswap/module/error.hpp>
#include "source.hpp"
#include "../shadow_options.hpp"

namespace hotswap::modules::detail {

class shadow_store;

/// One loadable copy. Move-only. release() after dlclose says whether the code
/// left the process: if so the copy goes, if not it is kept forever.
class shadow_copy {
 public:
  shadow_copy() = default;
  shadow_copy(shadow_copy&& o) noexcept
      : store_(std::exchange(o.store_, nullptr)), load_path_(std::move(o.load_path_)), file_(std::move(o.file_)),
        fd_(std::move(o.fd_)), identity_(o.identity_) {}
  shadow_copy& operator=(shadow_copy&& o) noexcept {
    if (this != &o) {
      release(true);
      store_ = std::exchange(o.store_, nullptr);
      load_path_ = std::move(o.load_path_);
      file_ = std::move(o.file_);
      fd_ = std::move(o.fd_);
      identity_ = o.identity_;
    }
    return *this;
  }
  shadow_copy(const shadow_copy&) = delete;
  ~shadow_copy() { release(true); }

  /// What to dlopen, and what to probe with RTLD_NOLOAD after dlclose.
  const std::string& load_path() const noexcept { return load_path_; }

  /// unmapped: remove the copy (or close the memfd, or free the in-place inode).
  /// Otherwise the code stays mapped: a file copy is kept (its name never
  /// reused), a descriptor is closed and its number burned, an in-place inode
  /// stays taken.
  inline void release(bool unmapped) noexcept;

 private:
  friend class shadow_store;
  shadow_store* store_ = nullptr;
  std::string load_path_;
  std::filesystem::path file_;  // file mode: the copy
  hotswap::unique_fd fd_;        // memory and in-place modes: what load_path_ names
  std::pair<dev_t, ino_t> identity_{};  // in_place: the inode taken
};

/// /proc/self/fd/N numbers whose library stayed mapped: never a load path again
/// (glibc would hand back the mapped library by name). Process-wide, like glibc's
/// list, and never destroyed: an unload worker may burn a number during exit.
class burned_fd_numbers {
 public:
  static burned_fd_numbers& instance() {
    static burned_fd_numbers& b = *new burned_fd_numbers;
    return b;
  }
  void burn(int fd) {
    std::lock_guard lock(mutex_);
    burned_.insert(fd);
  }
  /// `fd`, or a duplicate of it under a number never burned (then `fd` is closed).
  hotswap::unique_fd fresh(hotswap::unique_fd fd) {
    std::lock_guard lock(mutex_);
    if (!burned_.contains(fd.get())) return fd;
    int at = *burned_.rbegin() + 1;
    hotswap::unique_fd dup(::fcntl(fd.get(), F_DUPFD_CLOEXEC, at));
    return dup ? std::move(dup) : hotswap::unique_fd();
  }

 private:
  std::mutex mutex_;
  std::set<int> burned_;
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
      case shadow_mode::in_place:
        if (f.fd) {  // the descriptor that was checked; without one (a rollback), the bytes via a memfd
          std::lock_guard lock(mutex_);
          if (!in_place_.insert({f.device, f.inode}).second)
            throw module_error(module_errc::path_busy, f.path,
                               "path already loaded: with shadow copies off one file (device " +
                                   std::to_string(f.device) + ", inode " + std::to_string(f.inode) +
                                   ", under any name or hard link) can be loaded once at a time");
          c.identity_ = {f.device, f.inode};
          c.fd_ = hotswap::unique_fd(::fcntl(f.fd->get(), F_DUPFD_CLOEXEC, 0));
          if (!c.fd_) fail(f, "dup");
          c.fd_ = detail::burned_fd_numbers::instance().fresh(std::move(c.fd_));
          if (!c.fd_) fail(f, "dup");
          c.load_path_ = "/proc/self/fd/" + std::to_string(c.fd_.get());
          return c;
        }
        [[fallthrough]];
      case shadow_mode::memory: {
        // memfd names are limited to 249 bytes (NAME_MAX - strlen("memfd:")).
        const std::string name = ("hs." + f.path.filename().string()).substr(0, 249);
        c.fd_ = hotswap::unique_fd(::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
        if (!c.fd_) fail(f, "memfd_create");
        write_all(c.fd_.get(), f);
        // Sealed: nobody can change the bytes behind the mapping.
        if (::fcntl(c.fd_.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0)
          fail(f, "seal");
        c.fd_ = detail::burned_fd_numbers::instance().fresh(std::move(c.fd_));
        if (!c.fd_) fail(f, "dup");
        c.load_path_ = "/proc/self/fd/" + std::to_string(c.fd_.get());
        return c;
      }
      case shadow_mode::file: break;
    }
    for (int attempt = 0;; ++attempt) {
      const std::filesystem::path p = options_.dir / name_for(f);
      // O_EXCL: a name is never reused, not even one left by another store in this process.
      hotswap::unique_fd fd(::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0500));
      if (!fd && errno == EEXIST && attempt < 16) continue;
      if (!fd) fail(f, "create " + p.string());
      c.file_ = p;  // from here on, c's destructor removes it on failure
      c.load_path_ = p.string();
      write_all(fd.get(), f);
      if (options_.fsync && ::fsync(fd.get()) != 0) fail(f, "fsync " + p.string());
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
    std::string name = "hs." + std::to_string(::getpid()) + "." +
                       std::to_string(serial_.fetch_add(1, std::memory_order_relaxed)) + "." +
                       std::to_string(f.mtime_ns) + "." + std::to_string(f.bytes->size()) + "." +
                       f.sha256.substr(0, 16) + "." + f.path.filename().string();
    name.resize(std::min<std::size_t>(name.size(), NAME_MAX));  // the unique part comes first
    return name;
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
  std::set<std::pair<dev_t, ino_t>> in_place_;  // guarded by mutex_
};

inline void shadow_copy::release(bool unmapped) noexcept {
  if (store_ == nullptr) return;
  const bool in_place = identity_ != std::pair<dev_t, ino_t>{};
  if (unmapped) {
    if (!file_.empty()) ::unlink(file_.c_str());
    if (in_place) {
      std::lock_guard lock(store_->mutex_);
      store_->in_place_.erase(identity_);
    }
  } else if (fd_) {
    try {
      detail::burned_fd_numbers::instance().burn(fd_.get());
    } catch (...) {  // out of memory: keep the descriptor open instead, which burns the number as well
      static_cast<void>(fd_.release());
    }
  }
  // Still mapped: a file copy stays (name never reused), an in-place inode stays taken.
  fd_.reset();
  store_ = nullptr;
}

}  // namespace hotswap::modules::detail
