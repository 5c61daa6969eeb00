// libFuzzer target: the ELF sanity check runs on bytes an operator (or an
// attacker with write access to the plugin directory) controls, before dlopen.
// It must never read out of bounds, and an image it accepts must really have
// every table it relies on inside the buffer.
#include <hotswap/module/detail/elf_check.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> image(reinterpret_cast<const std::byte*>(data), size);
  const auto problem = hotswap::modules::detail::check_elf(image);
  if (!problem) {
    // Accepted: the header and the program header table must lie inside.
    ElfW(Ehdr) h;
    if (size < sizeof h) std::abort();
    std::memcpy(&h, data, sizeof h);
    if (h.e_phoff > size || h.e_phnum * sizeof(ElfW(Phdr)) > size - h.e_phoff) std::abort();
  } else if (problem->cause.empty()) {
    std::abort();  // every refusal must say why
  }
  return 0;
}
