// A full ELF validation of a plugin's bytes before dlopen sees them.
//
// dlopen trusts its input: a half-written file (a truncated tail, or the start
// of one build over the end of another) can make ld.so read past the file,
// hit an internal assertion and exit the whole process, or fault at the first
// call. So before loading we check everything ld.so will dereference: the
// magic, our class, byte order and machine, type ET_DYN, both header tables,
// every section's and every loadable segment's bytes inside the file, the
// dynamic section (inside the file, inside a loadable segment, terminated),
// its string and symbol tables (inside the file, every name inside the string
// table), and every note. What it finds along the way is returned for the
// policy: DT_NEEDED, DT_RPATH, DT_RUNPATH, DT_SONAME and the hotswap metadata
// note (plugin.h), read without running anything; and which of the imports
// through which code could leave work for a thread's exit (thread_exit_imports,
// below) the file uses, which decides where its hooks may run (hook_runner.hpp).
//
// It also bounds what ld.so would map (elf_limits): a file may not ask for
// more program headers, loadable segments or address space than a plugin
// needs. Each loadable segment becomes at least one mapping, and a process has
// only vm.max_map_count of them (65,530 by default): one file with 65,000
// PT_LOAD entries would leave the host unable to malloc, spawn or load.
//
// Mixed files that are still structurally sound pass this; the plugin's seal
// (metadata_check.hpp) and the preflight (preflight.hpp) catch those.
#pragma once

#include <elf.h>
#include <link.h>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <hotswap/module/error.hpp>
#include <hotswap/module/plugin.h>
#include "../elf_limits.hpp"

namespace hotswap::modules::detail {

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

/// Imports through which a library's code could leave work for the exit of a
/// thread it ran on, work that runs (or touches) the library's code or data:
/// a thread_local with a destructor (the compiler calls __cxa_thread_atexit,
/// libstdc++ forwards to glibc's _impl), a pthread or C11 key with a
/// destructor, libstdc++'s two at-thread-exit calls, and a library opened or
/// looked up at run time (which could do any of these out of sight).
/// A file that imports none of them cannot leave such work: its code may run
/// on a thread that outlives the call (hook_runner.hpp).
inline constexpr std::string_view thread_exit_import_names[] = {
    "__cxa_thread_atexit_impl",
    "__cxa_thread_atexit",
    "pthread_key_create",
    "tss_create",
    "_ZSt25notify_all_at_thread_exitRSt18condition_variableSt11unique_lockISt5mutexE",
    "_ZNSt13__future_base13_State_baseV211_Make_ready6_M_setEv",  // promise::set_*_at_thread_exit
    "dlopen",
    "dlmopen",
    "dlsym",
    "dlvsym",
};

/// What a structurally sound plugin file says about itself.
struct elf_facts {
  std::vector<std::string> needed;  ///< DT_NEEDED, in order
  std::string rpath, runpath, soname;
  /// Offset of the hotswap metadata note's descriptor in the file, if there is one.
  std::optional<std::uint64_t> metadata_offset;
  std::uint64_t metadata_size = 0;
  int metadata_notes = 0;  ///< more than one is refused by the metadata check
  std::uint32_t load_segments = 0;  ///< PT_LOAD entries: at least one mapping each
  std::uint64_t mapped_bytes = 0;   ///< address space the loadable segments span
  /// Names of the symbols the file defines and exports (global or weak, default
  /// or protected visibility): what it could interpose if it joined the global scope.
  std::vector<std::string> exported;
  /// The thread_exit_import_names the file imports (undefined in its dynamic symbol table).
  std::vector<std::string> thread_exit_imports;
};

/// Keeps the checks below in one place: every read goes through here.
class elf_reader {
 public:
  explicit elf_reader(std::span<const std::byte> image) : image_(image) {}

  std::uint64_t size() const noexcept { return image_.size(); }
  bool holds(std::uint64_t offset, std::uint64_t bytes) const noexcept {
    auto end = table_end(offset, 1, bytes);
    return end && *end <= image_.size();
  }
  template <class T>
  T at(std::uint64_t offset) const noexcept {  // callers checked holds(offset, sizeof(T))
    T v;
    std::memcpy(&v, image_.data() + offset, sizeof v);
    return v;
  }
  const char* chars(std::uint64_t offset) const noexcept { return reinterpret_cast<const char*>(image_.data()) + offset; }

 private:
  std::span<const std::byte> image_;
};

inline load_problem truncated_problem(const std::string& what, std::uint64_t size) {
  return {module_errc::truncated,
          "truncated: " + what + " lies past the file's " + std::to_string(size) + " bytes (partial copy?)"};
}
inline load_problem malformed(const std::string& what) {
  return {module_errc::not_elf, "malformed ELF: " + what + " (half-written or corrupted?)"};
}

/// nullopt if `image` is a complete, well-formed shared object for this host within
/// `limits`; then `facts` (if given) holds what it needs, its search paths and where
/// its metadata note is.
inline std::optional<load_problem> check_elf(std::span<const std::byte> image, elf_facts* facts = nullptr,
                                             const elf_limits& limits = {}) {
  using ehdr = ElfW(Ehdr);
  using phdr = ElfW(Phdr);
  using shdr = ElfW(Shdr);
  using dyn = ElfW(Dyn);
  using sym = ElfW(Sym);
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

  const detail::elf_reader r(image);
  const auto h = r.at<ehdr>(0);
  if (h.e_machine != detail::host_elf_machine())
    return load_problem{module_errc::wrong_machine, "wrong machine " + std::to_string(h.e_machine) + " (host is " +
                                                       std::to_string(detail::host_elf_machine()) + ")"};
  if (h.e_type != ET_DYN)
    return load_problem{module_errc::not_shared_object, "not a shared object (e_type " + std::to_string(h.e_type) + ")"};
  if (h.e_phnum == 0) return load_problem{module_errc::not_shared_object, "no program headers"};
  if (h.e_phentsize != sizeof(phdr) || (h.e_shnum != 0 && h.e_shentsize != sizeof(shdr)))
    return load_problem{module_errc::not_elf, "unexpected ELF header table entry sizes"};

  auto past_end = [&](std::optional<std::uint64_t> end, const std::string& what) -> std::optional<load_problem> {
    if (end && *end <= size) return std::nullopt;
    return detail::truncated_problem(what, size);
  };
  if (h.e_phnum > limits.max_program_headers)
    return load_problem{module_errc::elf_limit, "ELF limit: " + std::to_string(h.e_phnum) +
                                                    " program headers, the limit is " +
                                                    std::to_string(limits.max_program_headers) +
                                                    " (source_policy::elf.max_program_headers)"};
  if (auto p = past_end(detail::table_end(h.e_phoff, h.e_phnum, sizeof(phdr)), "the program header table")) return p;
  // e_shnum == 0 with e_shoff set means "more than 0xff00 sections": the count is in
  // section 0, which must then itself be present.
  std::uint64_t sections = h.e_shoff == 0 ? 0 : (h.e_shnum == 0 ? 1 : h.e_shnum);
  if (auto p = past_end(detail::table_end(h.e_shoff, sections, sizeof(shdr)), "the section header table")) return p;
  if (sections == 1 && h.e_shnum == 0) {
    sections = r.at<shdr>(h.e_shoff).sh_size;
    if (auto p = past_end(detail::table_end(h.e_shoff, sections, sizeof(shdr)), "the section header table")) return p;
  }

  // Sections: every one that has bytes in the file has all of them there.
  for (std::uint64_t i = 0; i < sections; ++i) {
    const auto s = r.at<shdr>(h.e_shoff + i * sizeof(shdr));
    if (s.sh_type == SHT_NOBITS || s.sh_type == SHT_NULL) continue;
    if (!r.holds(s.sh_offset, s.sh_size)) return detail::truncated_problem("section " + std::to_string(i), size);
    if (s.sh_type == SHT_DYNSYM && s.sh_entsize != sizeof(sym)) return detail::malformed("dynamic symbol entry size");
  }

  // Segments: loadable ones in the file and no larger on disk than in memory; exactly one PT_DYNAMIC.
  std::vector<phdr> loads;
  std::optional<phdr> dynamic;
  std::vector<phdr> notes;
  for (std::uint64_t i = 0; i < h.e_phnum; ++i) {
    const auto ph = r.at<phdr>(h.e_phoff + i * sizeof(phdr));
    if (ph.p_type == PT_LOAD) {
      if (!r.holds(ph.p_offset, ph.p_filesz)) return detail::truncated_problem("a loadable segment", size);
      if (ph.p_filesz > ph.p_memsz) return detail::malformed("a loadable segment larger in the file than in memory");
      loads.push_back(ph);
    } else if (ph.p_type == PT_DYNAMIC) {
      if (dynamic) return detail::malformed("two dynamic segments");
      if (!r.holds(ph.p_offset, ph.p_filesz)) return detail::truncated_problem("the dynamic section", size);
      dynamic = ph;
    } else if (ph.p_type == PT_NOTE) {
      if (!r.holds(ph.p_offset, ph.p_filesz)) return detail::truncated_problem("a note segment", size);
      notes.push_back(ph);
    }
  }
  if (loads.empty()) return load_problem{module_errc::not_shared_object, "no loadable segment"};
  if (loads.size() > limits.max_load_segments)
    return load_problem{module_errc::elf_limit, "ELF limit: " + std::to_string(loads.size()) +
                                                    " loadable segments (PT_LOAD), the limit is " +
                                                    std::to_string(limits.max_load_segments) +
                                                    " (source_policy::elf.max_load_segments)"};
  std::uint64_t low = UINT64_MAX, high = 0;
  for (const phdr& l : loads) {
    const auto end = detail::table_end(l.p_vaddr, 1, l.p_memsz);
    if (!end) return detail::malformed("a loadable segment ends past the address space");
    low = std::min<std::uint64_t>(low, l.p_vaddr & ~std::uint64_t{0xfff});
    high = std::max(high, *end);
  }
  if (high - low > limits.max_mapped_bytes)
    return load_problem{module_errc::elf_limit, "ELF limit: the loadable segments span " + std::to_string(high - low) +
                                                    " bytes of address space, the limit is " +
                                                    std::to_string(limits.max_mapped_bytes) +
                                                    " (source_policy::elf.max_mapped_bytes)"};
  if (!dynamic) return load_problem{module_errc::not_shared_object, "no dynamic section"};

  // An address the dynamic section names, as a file offset; nullopt unless `bytes` of it are in the file.
  auto file_offset = [&](std::uint64_t vaddr, std::uint64_t bytes) -> std::optional<std::uint64_t> {
    for (const phdr& l : loads)
      if (vaddr >= l.p_vaddr && vaddr - l.p_vaddr < l.p_filesz && bytes <= l.p_filesz - (vaddr - l.p_vaddr))
        return l.p_offset + (vaddr - l.p_vaddr);
    return std::nullopt;
  };
  if (!file_offset(dynamic->p_vaddr, dynamic->p_filesz)) return detail::malformed("dynamic section outside every loadable segment");

  std::optional<std::uint64_t> strtab, strsz, symtab;
  std::vector<std::pair<std::int64_t, std::uint64_t>> names;  // (tag, string offset)
  bool terminated = false;
  for (std::uint64_t i = 0; i + sizeof(dyn) <= dynamic->p_filesz; i += sizeof(dyn)) {
    const auto d = r.at<dyn>(dynamic->p_offset + i);
    if (d.d_tag == DT_NULL) {
      terminated = true;
      break;
    }
    switch (d.d_tag) {
      case DT_STRTAB: strtab = d.d_un.d_ptr; break;
      case DT_STRSZ: strsz = d.d_un.d_val; break;
      case DT_SYMTAB: symtab = d.d_un.d_ptr; break;
      case DT_SYMENT:
        if (d.d_un.d_val != sizeof(sym)) return detail::malformed("DT_SYMENT " + std::to_string(d.d_un.d_val));
        break;
      case DT_NEEDED:
      case DT_RPATH:
      case DT_RUNPATH:
      case DT_SONAME: names.emplace_back(d.d_tag, d.d_un.d_val); break;
      default: break;
    }
  }
  if (!terminated) return detail::malformed("dynamic section without its DT_NULL end");
  if (!strtab || !strsz || !symtab) return detail::malformed("dynamic section without a string or symbol table");
  const auto str_off = file_offset(*strtab, *strsz);
  if (!str_off) return detail::truncated_problem("the dynamic string table", size);
  if (*strsz == 0 || *r.chars(*str_off + *strsz - 1) != '\0') return detail::malformed("unterminated dynamic string table");
  auto string_at = [&](std::uint64_t off) -> std::optional<std::string> {
    if (off >= *strsz) return std::nullopt;
    return std::string(r.chars(*str_off + off));  // terminated: the table's last byte is NUL
  };
  if (!file_offset(*symtab, sizeof(sym))) return detail::truncated_problem("the dynamic symbol table", size);

  // Every dynamic symbol's name inside the string table (the count comes from .dynsym).
  elf_facts found;
  std::vector<std::string> exported;
  for (std::uint64_t i = 0; i < sections; ++i) {
    const auto s = r.at<shdr>(h.e_shoff + i * sizeof(shdr));
    if (s.sh_type != SHT_DYNSYM) continue;
    for (std::uint64_t k = 0; k < s.sh_size / sizeof(sym); ++k) {
      const auto y = r.at<sym>(s.sh_offset + k * sizeof(sym));
      if (y.st_name >= *strsz)
        return detail::malformed("dynamic symbol " + std::to_string(k) + " names a string past the string table");
      const auto bind = ELF64_ST_BIND(y.st_info), visibility = ELF64_ST_VISIBILITY(y.st_other);
      if (y.st_name == 0) continue;
      if (y.st_shndx == SHN_UNDEF) {
        const std::string_view name(r.chars(*str_off + y.st_name));
        for (std::string_view t : thread_exit_import_names)
          if (name == t) found.thread_exit_imports.emplace_back(name);
      } else if ((bind == STB_GLOBAL || bind == STB_WEAK || bind == STB_GNU_UNIQUE) &&
                 (visibility == STV_DEFAULT || visibility == STV_PROTECTED)) {
        exported.emplace_back(*string_at(y.st_name));
      }
    }
  }
  found.exported = std::move(exported);
  found.load_segments = static_cast<std::uint32_t>(loads.size());
  found.mapped_bytes = high - low;
  for (const auto& [tag, off] : names) {
    auto text = string_at(off);
    if (!text) return detail::malformed("a dynamic entry names a string past the string table");
    if (tag == DT_NEEDED) found.needed.push_back(std::move(*text));
    if (tag == DT_RPATH) found.rpath = std::move(*text);
    if (tag == DT_RUNPATH) found.runpath = std::move(*text);
    if (tag == DT_SONAME) found.soname = std::move(*text);
  }

  // Notes: every header and payload inside its segment; ours remembered.
  for (const phdr& n : notes) {
    const std::uint64_t align = n.p_align == 8 ? 8 : 4;
    auto up = [&](std::uint64_t v) { return (v + align - 1) & ~(align - 1); };
    for (std::uint64_t at = 0; at + sizeof(ElfW(Nhdr)) <= n.p_filesz;) {
      const auto nh = r.at<ElfW(Nhdr)>(n.p_offset + at);
      const std::uint64_t name_at = at + sizeof nh, desc_at = name_at + up(nh.n_namesz);
      if (desc_at > n.p_filesz || nh.n_descsz > n.p_filesz - desc_at) return detail::malformed("a note runs past its segment");
      if (nh.n_type == HOTSWAP_PLUGIN_NOTE_TYPE && nh.n_namesz == sizeof HOTSWAP_PLUGIN_NOTE_NAME &&
          std::memcmp(r.chars(n.p_offset + name_at), HOTSWAP_PLUGIN_NOTE_NAME, sizeof HOTSWAP_PLUGIN_NOTE_NAME) == 0) {
        ++found.metadata_notes;
        found.metadata_offset = n.p_offset + desc_at;
        found.metadata_size = nh.n_descsz;
      }
      at = desc_at + up(nh.n_descsz);
    }
  }
  if (facts != nullptr) *facts = std::move(found);
  return std::nullopt;
}

}  // namespace hotswap::modules::detail
