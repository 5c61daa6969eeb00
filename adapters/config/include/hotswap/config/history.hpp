// The files next to a configuration, and how they are written so that a
// crash leaves each one either old or new, never half-written.
//
// For a main file DIR/NAME.toml:
//   NAME.<major>.<minor>.toml   history: major = one write-to-disk of the
//                               in-memory store, minor = one accepted hand
//                               edit on top of it (major.0 is the write itself)
//   NAME.error.<n>.toml         the text of the n-th rejected edit, kept aside
//   NAME.error.<n>.txt          its error: "file:line:column: reason"
//   NAME.toml.tmp               write-to-disk's temp file (kept when a check
//                               refuses to replace the main file)
//
// Durable writes go to a temporary name, are fsync'ed, renamed over the final
// name, and the directory is fsync'ed: rename(2) is atomic, so a reader (or a
// restart after SIGKILL or power loss) finds the old file or the new one.
//
// Every file written here takes the main file's mode and owner (file_access):
// a history or error copy of a 0600 file holding a password is 0600 too. The
// temporary name is created afresh (O_EXCL) and never followed if it is a
// symlink, so a link planted there cannot redirect the write.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hotswap::config {

struct history_entry {
  std::uint64_t major = 0;
  std::uint64_t minor = 0;
  std::filesystem::path path;
  auto operator<=>(const history_entry& o) const noexcept {
    return major != o.major ? major <=> o.major : minor <=> o.minor;
  }
  bool operator==(const history_entry& o) const noexcept { return major == o.major && minor == o.minor; }
  std::string version() const { return std::to_string(major) + "." + std::to_string(minor); }
};

/// The permission bits and owner a written file takes: its original's.
struct file_access {
  mode_t mode = 0644;  ///< permission bits only
  /// Owner and group; unset: the writer's. Setting another owner needs
  /// privilege (CAP_CHOWN): a root server's copies keep a user's ownership.
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
};

class history_dir {
 public:
  /// `main_file` is DIR/NAME.toml (the extension must be .toml).
  explicit history_dir(std::filesystem::path main_file);

  const std::filesystem::path& main_file() const noexcept { return main_; }
  const std::filesystem::path& directory() const noexcept { return dir_; }
  const std::string& name() const noexcept { return name_; }

  /// Every history file, oldest first.
  std::vector<history_entry> list() const;
  /// The newest history file of `major`, if any.
  std::optional<history_entry> newest(std::uint64_t major) const;
  /// The newest history file of all.
  std::optional<history_entry> newest() const;

  std::filesystem::path path_for(std::uint64_t major, std::uint64_t minor) const;
  std::filesystem::path temp_file() const;

  /// Error copies n (oldest first).
  std::vector<std::uint64_t> error_numbers() const;
  std::filesystem::path error_copy(std::uint64_t n) const;
  std::filesystem::path error_reason(std::uint64_t n) const;

  /// Deletes the oldest history files until `keep` remain, never `protect`.
  /// Returns how many were deleted.
  std::size_t prune(std::size_t keep, const std::optional<history_entry>& protect) const;
  /// Deletes the oldest error copies (and reasons) until `keep` remain.
  void prune_errors(std::size_t keep) const;

 private:
  std::filesystem::path main_;
  std::filesystem::path dir_;
  std::string name_;
};

/// Writes `text` to `path` durably and atomically (temp, fsync, rename,
/// directory fsync). Throws std::system_error naming the file.
void write_durably(const std::filesystem::path& path, std::string_view text, const file_access& access = {});

/// Replaces `path` by a new file holding `text` (not atomically), with
/// `access`, and fsyncs it. A symlink at `path` is replaced, not followed.
void write_and_sync(const std::filesystem::path& path, std::string_view text, const file_access& access = {});

/// fsync(2) of a directory, so a rename or create inside it survives a crash.
void sync_directory(const std::filesystem::path& dir);

}  // namespace hotswap::config
