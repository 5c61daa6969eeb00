// Where agents get a release's bytes: a content-addressed store, so the name
// of an artifact is its SHA-256 and a fetched copy is checked against it
// before anything loads it. directory_store keeps them in a shared directory
// (ROOT/sha256/<hex>); another store (HTTP, S3) implements the same two calls.
#pragma once

#include <filesystem>
#include <string>

namespace hotswap::fleet {

/// The SHA-256 of a file's contents, lowercase hex; throws std::runtime_error naming the file.
std::string sha256_file(const std::filesystem::path& file);

class artifact_store {
 public:
  virtual ~artifact_store() = default;
  /// Stores `file`; returns its SHA-256 (its name in the store).
  virtual std::string put(const std::filesystem::path& file) = 0;
  /// Copies artifact `sha256` to `destination` (mode 0644, written beside it
  /// and renamed into place), after checking the copy's hash. Throws
  /// std::runtime_error naming the artifact and the cause (absent, corrupt).
  virtual void fetch(const std::string& sha256, const std::filesystem::path& destination) = 0;
};

class directory_store final : public artifact_store {
 public:
  explicit directory_store(std::filesystem::path root);
  std::string put(const std::filesystem::path& file) override;
  void fetch(const std::string& sha256, const std::filesystem::path& destination) override;
  std::filesystem::path path_of(const std::string& sha256) const { return root_ / "sha256" / sha256; }

 private:
  std::filesystem::path root_;
};

}  // namespace hotswap::fleet
