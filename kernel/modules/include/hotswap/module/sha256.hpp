// SHA-256 from OpenSSL's libcrypto (EVP): the identity of a plugin's bytes in
// shadow-copy names, logs, the allow list and the plugin's seal. EVP picks the
// CPU's SHA extensions (SHA-NI, ARMv8 SHA2) when present.
//
//   hotswap::modules::sha256 h;  h.update(bytes);  std::string hex = h.hex();
//   hotswap::modules::sha256_hex("abc")  // "ba7816bf..."
//
// Checked against the FIPS / NIST vectors in tests/modules/sha256_test.cpp.
#pragma once

#include <openssl/evp.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <string_view>

namespace hotswap::modules {

class sha256 {
 public:
  using digest = std::array<std::uint8_t, 32>;

  /// Throws std::bad_alloc if libcrypto cannot make a context.
  sha256() : ctx_(EVP_MD_CTX_new()) {
    if (!ctx_ || EVP_DigestInit_ex2(ctx_.get(), algorithm(), nullptr) != 1) throw std::bad_alloc();
  }

  void update(std::span<const std::byte> data) noexcept {
    // EVP_DigestUpdate on an initialised SHA-256 context cannot fail.
    EVP_DigestUpdate(ctx_.get(), data.data(), data.size());
  }
  void update(std::string_view s) noexcept { update(std::as_bytes(std::span(s.data(), s.size()))); }

  /// The digest; the object is spent afterwards.
  digest finish() noexcept {
    digest d{};
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx_.get(), d.data(), &n);
    return d;
  }

  std::string hex() noexcept { return to_hex(finish()); }

  static std::string to_hex(const digest& d) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out(64, '0');
    for (std::size_t i = 0; i < d.size(); ++i) {
      out[2 * i] = digits[d[i] >> 4];
      out[2 * i + 1] = digits[d[i] & 15];
    }
    return out;
  }

 private:
  // Fetched once: EVP_sha256() makes every init look the provider up again
  // (locks, a name lookup and ENGINE checks), most of a small file's hash.
  // Process-wide and never freed, as libcrypto keeps its own until exit.
  static const EVP_MD* algorithm() {
    static const EVP_MD* const md = [] {
      const EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA2-256", nullptr);
      return fetched != nullptr ? fetched : EVP_sha256();
    }();
    return md;
  }

  struct ctx_free {
    void operator()(EVP_MD_CTX* c) const noexcept { EVP_MD_CTX_free(c); }
  };
  std::unique_ptr<EVP_MD_CTX, ctx_free> ctx_;
};

inline std::string sha256_hex(std::span<const std::byte> data) {
  sha256 h;
  h.update(data);
  return h.hex();
}
inline std::string sha256_hex(std::string_view s) {
  sha256 h;
  h.update(s);
  return h.hex();
}

}  // namespace hotswap::modules
