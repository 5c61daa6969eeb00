// History naming, listing, pruning and durable writes.
#include "hotswap/config/history.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace hotswap::config {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void throw_errno(int error, const std::string& what) {
  throw std::system_error(error, std::system_category(), "hotswap::config: " + what);
}

/// Parses a decimal number that is the whole of `s`.
std::optional<std::uint64_t> whole_number(std::string_view s) {
  std::uint64_t n = 0;
  if (s.empty() || s.size() > 18) return std::nullopt;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
  return n;
}

class fd_guard {
 public:
  explicit fd_guard(int fd) : fd_(fd) {}
  fd_guard(const fd_guard&) = delete;
  fd_guard& operator=(const fd_guard&) = delete;
  ~fd_guard() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const noexcept { return fd_; }
  /// close(2) reports delayed write errors; say so instead of losing them.
  int release_and_close() noexcept { return ::close(std::exchange(fd_, -1)); }

 private:
  int fd_;
};

}  // namespace

history_dir::history_dir(fs::path main_file) : main_(std::move(main_file)) {
  if (main_.extension() != ".toml")
    throw std::invalid_argument("hotswap::config: '" + main_.string() + "' must be a .toml file");
  dir_ = main_.parent_path();
  if (dir_.empty()) dir_ = ".";
  name_ = main_.stem().string();
}

std::vector<history_entry> history_dir::list() const {
  std::vector<history_entry> out;
  std::error_code ec;
  const std::string prefix = name_ + ".";
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    const std::string file = entry.path().filename().string();
    if (!file.starts_with(prefix) || !file.ends_with(".toml")) continue;
    const std::string_view middle = std::string_view(file).substr(prefix.size(), file.size() - prefix.size() - 5);
    const auto dot = middle.find('.');
    if (dot == std::string_view::npos) continue;
    const auto major = whole_number(middle.substr(0, dot));
    const auto minor = whole_number(middle.substr(dot + 1));
    if (major && minor) out.push_back({*major, *minor, entry.path()});
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::optional<history_entry> history_dir::newest(std::uint64_t major) const {
  std::optional<history_entry> best;
  for (auto& e : list())
    if (e.major == major) best = e;
  return best;
}

std::optional<history_entry> history_dir::newest() const {
  auto all = list();
  if (all.empty()) return std::nullopt;
  return all.back();
}

fs::path history_dir::path_for(std::uint64_t major, std::uint64_t minor) const {
  return dir_ / (name_ + "." + std::to_string(major) + "." + std::to_string(minor) + ".toml");
}

fs::path history_dir::temp_file() const { return dir_ / (name_ + ".toml.tmp"); }

std::vector<std::uint64_t> history_dir::error_numbers() const {
  std::vector<std::uint64_t> out;
  std::error_code ec;
  const std::string prefix = name_ + ".error.";
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    const std::string file = entry.path().filename().string();
    if (!file.starts_with(prefix) || !file.ends_with(".toml")) continue;
    if (auto n = whole_number(std::string_view(file).substr(prefix.size(), file.size() - prefix.size() - 5)))
      out.push_back(*n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

fs::path history_dir::error_copy(std::uint64_t n) const {
  return dir_ / (name_ + ".error." + std::to_string(n) + ".toml");
}
fs::path history_dir::error_reason(std::uint64_t n) const {
  return dir_ / (name_ + ".error." + std::to_string(n) + ".txt");
}

std::size_t history_dir::prune(std::size_t keep, const std::optional<history_entry>& protect) const {
  auto all = list();
  std::size_t deleted = 0;
  std::size_t remaining = all.size();
  for (const auto& e : all) {
    if (remaining <= keep) break;
    if (protect && e == *protect) continue;
    std::error_code ec;
    if (fs::remove(e.path, ec)) {
      ++deleted;
      --remaining;
    }
  }
  if (deleted > 0) sync_directory(dir_);
  return deleted;
}

void history_dir::prune_errors(std::size_t keep) const {
  auto numbers = error_numbers();
  for (std::size_t i = 0; i + keep < numbers.size(); ++i) {
    std::error_code ec;
    fs::remove(error_copy(numbers[i]), ec);
    fs::remove(error_reason(numbers[i]), ec);
  }
}

void write_and_sync(const fs::path& path, std::string_view text, const file_access& access) {
  // A fresh inode (O_EXCL, never through a symlink) created owner-only, then
  // given the original's owner and mode before any byte is written: nobody
  // else can open it in between.
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw_errno(errno, "cannot replace '" + path.string() + "'");
  fd_guard fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (fd.get() < 0) throw_errno(errno, "cannot create '" + path.string() + "'");
  if ((access.uid || access.gid) &&
      ::fchown(fd.get(), access.uid.value_or(static_cast<uid_t>(-1)), access.gid.value_or(static_cast<gid_t>(-1))) != 0 &&
      errno != EPERM)
    throw_errno(errno, "cannot set the owner of '" + path.string() + "'");
  // Without the privilege to give it the original's owner, the file stays
  // ours, and its mode still never grants more than the original's.
  if (::fchmod(fd.get(), access.mode & 0777) != 0) throw_errno(errno, "cannot set the mode of '" + path.string() + "'");
  while (!text.empty()) {
    const ssize_t n = ::write(fd.get(), text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno(errno, "cannot write '" + path.string() + "'");
    text.remove_prefix(static_cast<std::size_t>(n));
  }
  if (::fsync(fd.get()) != 0) throw_errno(errno, "cannot fsync '" + path.string() + "'");
  if (fd.release_and_close() != 0) throw_errno(errno, "cannot close '" + path.string() + "'");
}

void sync_directory(const fs::path& dir) {
  fd_guard fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) throw_errno(errno, "cannot open directory '" + dir.string() + "'");
  if (::fsync(fd.get()) != 0) throw_errno(errno, "cannot fsync directory '" + dir.string() + "'");
}

void write_durably(const fs::path& path, std::string_view text, const file_access& access) {
  fs::path temp = path;
  temp += ".tmp";
  write_and_sync(temp, text, access);
  if (::rename(temp.c_str(), path.c_str()) != 0) throw_errno(errno, "cannot rename onto '" + path.string() + "'");
  sync_directory(path.parent_path().empty() ? fs::path(".") : path.parent_path());
}

}  // namespace hotswap::config
