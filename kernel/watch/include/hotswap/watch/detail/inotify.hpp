// One inotify watch on one directory, read without blocking.
//
// Builds and editors rarely write a file in place: they write a temporary and
// rename it over the old name, so the watch is on the directory, and the
// interesting events name a child:
//   IN_CLOSE_WRITE  a writer closed the file          (in-place saves, cp, ld)
//   IN_MOVED_TO     a file was renamed to this name   (editors, lld, install -C)
//   IN_DELETE, IN_MOVED_FROM   the name went away     (may come back: vim's save)
//   IN_CREATE       a new name; only a symlink or a hard link arrives complete
//                   this way, a new regular file is reported at its close-write
// IN_MODIFY is not asked for: it comes once per write(2) while the file is
// still incomplete; the watcher's quiet check (stat before and after hashing)
// covers what it would tell.
//   IN_Q_OVERFLOW   the kernel dropped events (queue longer than
//                   /proc/sys/fs/inotify/max_queued_events): rescan
//   IN_IGNORED, IN_DELETE_SELF, IN_MOVE_SELF, IN_UNMOUNT   the watch is gone
#pragma once

#include <sys/inotify.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits.h>
#include <string_view>
#include <system_error>
#include <unistd.h>

#include <hotswap/unique_fd.hpp>

namespace hotswap::watch::detail {

class inotify_watch {
 public:
  /// What one event means to the watcher.
  enum class event_kind {
    written,    ///< close-write or moved-to: a candidate new version
    removed,    ///< delete or moved-from
    created,    ///< a new name (see the note at the top)
    overflow,   ///< events were lost: the directory must be rescanned
    watch_lost  ///< the directory itself went away or was moved
  };

  static constexpr std::uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM | IN_CREATE |
                                        IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK;

  inotify_watch() = default;

  /// Why open() failed, which decides between falling back and giving up.
  enum class failure {
    none,
    unavailable,  ///< inotify_init1 failed (EMFILE: out of instances, ENOSYS/EPERM: a sandbox)
    watch,        ///< inotify_add_watch failed (ENOSPC: out of watches, ENOENT, EACCES, ENOTDIR)
  };

  failure open(const char* directory, std::error_code& error) {
    fd_.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (!fd_) {
      error.assign(errno, std::system_category());
      return failure::unavailable;
    }
    if (::inotify_add_watch(fd_.get(), directory, mask) < 0) {
      error.assign(errno, std::system_category());
      fd_.reset();
      return failure::watch;
    }
    error.clear();
    return failure::none;
  }

  int fd() const noexcept { return fd_.get(); }
  explicit operator bool() const noexcept { return static_cast<bool>(fd_); }
  void close() noexcept { fd_.reset(); }

  /// Hands every queued event to on_event(event_kind, name) and returns when
  /// the queue is empty. Events on subdirectories are skipped; `name` is empty
  /// for overflow and watch_lost.
  template <class OnEvent>
  std::error_code drain(OnEvent&& on_event) {
    for (;;) {
      const ssize_t got = ::read(fd_.get(), buffer_, sizeof buffer_);
      if (got < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return {};
        return {errno, std::system_category()};
      }
      for (std::size_t at = 0; at + sizeof(inotify_event) <= static_cast<std::size_t>(got);) {
        inotify_event header;  // copied out: the name makes records of any length
        std::memcpy(&header, buffer_ + at, sizeof header);
        const char* name_bytes = buffer_ + at + sizeof header;
        at += sizeof header + header.len;
        std::string_view name(name_bytes, header.len == 0 ? 0 : ::strnlen(name_bytes, header.len));
        if ((header.mask & IN_Q_OVERFLOW) != 0U) {
          on_event(event_kind::overflow, std::string_view{});
        } else if ((header.mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)) != 0U) {
          on_event(event_kind::watch_lost, std::string_view{});
        } else if ((header.mask & IN_ISDIR) != 0U || name.empty()) {
          continue;
        } else if ((header.mask & (IN_CLOSE_WRITE | IN_MOVED_TO)) != 0U) {
          on_event(event_kind::written, name);
        } else if ((header.mask & (IN_DELETE | IN_MOVED_FROM)) != 0U) {
          on_event(event_kind::removed, name);
        } else if ((header.mask & IN_CREATE) != 0U) {
          on_event(event_kind::created, name);
        }
      }
    }
  }

 private:
  hotswap::unique_fd fd_;
  // Room for many events per read; one needs sizeof(inotify_event) + NAME_MAX + 1.
  alignas(inotify_event) char buffer_[16 * (sizeof(inotify_event) + NAME_MAX + 1)];
};

}  // namespace hotswap::watch::detail
