#include <unistd.h>

#include <fstream>
#include <hotswap/fleet/artifact_store.hpp>
#include <hotswap/module/sha256.hpp>
#include <stdexcept>
#include <vector>

namespace hotswap::fleet {

namespace fs = std::filesystem;

std::string sha256_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + file.string());
  modules::sha256 h;
  std::vector<char> buf(1 << 16);
  while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0)
    h.update(std::string_view(buf.data(), static_cast<std::size_t>(in.gcount())));
  if (in.bad()) throw std::runtime_error("reading " + file.string() + " failed");
  return h.hex();
}

directory_store::directory_store(fs::path root) : root_(std::move(root)) { fs::create_directories(root_ / "sha256"); }

namespace {

// Copies `from` to `to` through a temporary beside `to`, so a reader never sees half a file.
void copy_into_place(const fs::path& from, const fs::path& to) {
  const fs::path tmp = to.string() + ".part." + std::to_string(::getpid());
  fs::copy_file(from, tmp, fs::copy_options::overwrite_existing);
  fs::permissions(tmp, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read);
  fs::rename(tmp, to);
}

}  // namespace

std::string directory_store::put(const fs::path& file) {
  const std::string sha = sha256_file(file);
  if (!fs::exists(path_of(sha))) copy_into_place(file, path_of(sha));
  return sha;
}

void directory_store::fetch(const std::string& sha256, const fs::path& destination) {
  const fs::path source = path_of(sha256);
  if (!fs::exists(source)) throw std::runtime_error("artifact " + sha256 + " is not in the store " + root_.string());
  copy_into_place(source, destination);
  const std::string got = sha256_file(destination);
  if (got != sha256) {
    fs::remove(destination);
    throw std::runtime_error("artifact " + sha256 + " in " + root_.string() + " is corrupt: its bytes hash to " + got);
  }
}

}  // namespace hotswap::fleet
