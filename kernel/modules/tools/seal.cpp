// hotswap-seal <plugin.so>: writes the plugin's seal into its metadata note.
//
// The seal is the SHA-256 of the whole file with the seal's 32 bytes zeroed
// (metadata_check.hpp). Run after linking and after anything else that
// changes the file (strip, objcopy): hotswap_add_plugin() runs it POST_BUILD.
// The host then refuses any file whose bytes do not match, such as an upload
// caught half-way that is part one build and part another.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <hotswap/module/detail/elf_check.hpp>
#include <hotswap/module/detail/metadata_check.hpp>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: hotswap-seal <plugin.so>\n");
    return 2;
  }
  std::vector<char> raw;
  {
    std::ifstream in(argv[1], std::ios::binary);
    raw.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) {
      std::fprintf(stderr, "hotswap-seal: %s: cannot read\n", argv[1]);
      return 1;
    }
  }
  const auto bytes = std::as_bytes(std::span(raw.data(), raw.size()));
  hotswap::modules::detail::elf_facts facts;
  if (auto p = hotswap::modules::detail::check_elf(bytes, &facts)) {
    std::fprintf(stderr, "hotswap-seal: %s: %s\n", argv[1], p->cause.c_str());
    return 1;
  }
  auto md = hotswap::modules::detail::read_metadata(bytes, facts);
  if (auto* p = std::get_if<hotswap::modules::load_problem>(&md)) {
    std::fprintf(stderr, "hotswap-seal: %s: %s\n", argv[1], p->cause.c_str());
    return 1;
  }
  const std::uint64_t at = hotswap::modules::detail::seal_offset(*facts.metadata_offset);
  const hotswap::modules::sha256::digest d = hotswap::modules::detail::seal_digest(bytes, at);
  std::fstream out(argv[1], std::ios::binary | std::ios::in | std::ios::out);
  out.seekp(static_cast<std::streamoff>(at));
  out.write(reinterpret_cast<const char*>(d.data()), static_cast<std::streamsize>(d.size()));
  if (!out.good()) {
    std::fprintf(stderr, "hotswap-seal: %s: cannot write the seal\n", argv[1]);
    return 1;
  }
  return 0;
}
