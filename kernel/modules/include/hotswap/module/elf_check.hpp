// An ELF sanity check on a plugin's bytes before dlopen sees them.
//
// dlopen of a half-written file may fail with a vague message, or worse, map a
// file whose tail is missing and fault at the first call into it. So before
// loading we check what a complete shared object for this host must satisfy:
// the magic, our class (64/32-bit), byte order and machine, type ET_DYN, and a
// size consistent with every table and loadable segment the header points to.
// A file still being copied fails the last check: the section header table
// sits at the end of the file.
#pragma once

#include <elf.h>
#include <link.h>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>

#include "error.hpp"

namespace hotswap {

namespace detail {

constexpr unsigned char host_elf_class = sizeof(void*) == 8 ? ELFCLASS64 : ELFCLASS32;
constexpr unsigned char host_elf_data = std::endian::native == std::endian::little ? ELFDATA2LSB : ELFDATA2MSB;

constexpr std::uint16_t host_elf_machine() noexcept {
#if defined(__x86_64__)
  return EM_X86_64;
#elif defined(__i386__)
  return EM_386;
#elif defined(__aarch64__)
  return EM_AARCH64;
#elif defined(__arm__)
  return EM_ARM;
#elif defined(__riscv)
  return EM_RISCV;
#elif defined(__powerpc64__)
  return EM_PPC64;
#elif defined(__s390x__)
  return EM_S390;
#else
#error "hotswap: add this architecture's EM_ value to host_elf_machine()"
#endif
}

/// end = offset + count * size, or nullopt if it overflows.
inline std::optional<std::uint64_t> table_end(std::uint64_t offset, std::uint64_t count, std::uint64_t size) noexcept {
  std::uint64_t bytes = 0, end = 0;
  if (__builtin_mul_overflow(count, size, &bytes) || __builtin_add_overflow(offset, bytes, &end)) return std::nullopt;
  return end;
}

}  // namespace detail

/// nullopt if `image` looks like a complete shared object for this host.
inline std::optional<load_problem> check_elf(std::span<const std::byte> image) {
  using ehdr = ElfW(Ehdr);
  using phdr = ElfW(Phdr);
  using shdr = ElfW(Shdr);
  const std::uint64_t size = image.size();
  if (size == 0) return load_problem{module_errc::empty_file, "empty file (0 bytes)"};
  if (size < SELFMAG || std::memcmp(image.data(), ELFMAG, SELFMAG) != 0)
    return load_problem{module_errc::not_elf, "not an ELF file (bad magic)"};
  if (size < EI_NIDENT) return load_problem{module_errc::truncated, "truncated ELF identification"};
  const auto* ident = reinterpret_cast<const unsigned char*>(image.data());
  if (ident[EI_CLASS] != detail::host_elf_class)
    return load_problem{module_errc::wrong_elf_class, "wrong ELF class " + std::to_string(ident[EI_CLASS]) +
                                                          " (host is " + std::to_string(detail::host_elf_class) + ")"};
  if (ident[EI_DATA] != detail::host_elf_data) return load_problem{module_errc::wrong_elf_class, "wrong ELF byte order"};
  if (size < sizeof(ehdr))
    return load_problem{module_errc::truncated, "truncated: " + std::to_string(size) + " bytes, less than an ELF header"};

  ehdr h;
  std::memcpy(&h, image.data(), sizeof h);  // the buffer may be unaligned
  if (h.e_machine != detail::host_elf_machine())
    return load_problem{module_errc::wrong_machine, "wrong machine " + std::to_string(h.e_machine) + " (host is " +
                                                       std::to_string(detail::host_elf_machine()) + ")"};
  if (h.e_type != ET_DYN)
    return load_problem{module_errc::not_shared_object, "not a shared object (e_type " + std::to_string(h.e_type) + ")"};
  if (h.e_phnum == 0) return load_problem{module_errc::not_shared_object, "no program headers"};
  if (h.e_phentsize != sizeof(phdr) || (h.e_shnum != 0 && h.e_shentsize != sizeof(shdr)))
    return load_problem{module_errc::not_elf, "unexpected ELF header table entry sizes"};

  auto past_end = [&](std::optional<std::uint64_t> end, const char* what) -> std::optional<load_problem> {
    if (end && *end <= size) return std::nullopt;
    return load_problem{module_errc::truncated, std::string("truncated: ") + what + " ends past the file's " +
                                                   std::to_string(size) + " bytes (partial copy?)"};
  };
  if (auto p = past_end(detail::table_end(h.e_phoff, h.e_phnum, sizeof(phdr)), "program header table")) return p;
  // e_shnum == 0 with e_shoff set means "more than 0xff00 sections": the count is in
  // section 0, which must then itself be present.
  const std::uint64_t sections = h.e_shoff == 0 ? 0 : (h.e_shnum == 0 ? 1 : h.e_shnum);
  if (auto p = past_end(detail::table_end(h.e_shoff, sections, sizeof(shdr)), "section header table")) return p;

  for (std::uint64_t i = 0; i < h.e_phnum; ++i) {
    phdr ph;
    std::memcpy(&ph, image.data() + h.e_phoff + i * sizeof(phdr), sizeof ph);
    if (ph.p_type != PT_LOAD) continue;
    if (auto p = past_end(detail::table_end(ph.p_offset, 1, ph.p_filesz), "a loadable segment")) return p;
  }
  return std::nullopt;
}

}  // namespace hotswap
