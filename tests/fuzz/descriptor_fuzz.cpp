// libFuzzer target: the descriptor check reads fields a plugin author (or a
// corrupted build) chose. Builds a descriptor from the input: numbers, string
// fields (each may be absent), function pointers present or not, and an
// expected interface; the check must refuse cleanly or accept only a
// descriptor whose every required field is there and matches.
#include <hotswap/module/detail/descriptor_check.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

class reader {
 public:
  reader(const std::uint8_t* d, std::size_t n) : data_(d), size_(n) {}
  template <class T>
  T number() {
    T v{};
    const std::size_t n = size_ < sizeof v ? size_ : sizeof v;
    std::memcpy(&v, data_, n);
    data_ += n;
    size_ -= n;
    return v;
  }
  std::string text() {
    const std::size_t n = std::min<std::size_t>(number<std::uint8_t>() % 48, size_);
    std::string s(reinterpret_cast<const char*>(data_), n);
    data_ += n;
    size_ -= n;
    return s;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
};

int startup(const hotswap_host_api*, void**, hotswap_plugin_error*) { return 0; }
void shutdown(void*) {}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  reader in(data, size);
  const auto flags = in.number<std::uint8_t>();
  hotswap_plugin_descriptor d{};
  d.abi_version = (flags & 1) ? HOTSWAP_PLUGIN_ABI_VERSION : in.number<std::uint32_t>();
  d.descriptor_size = (flags & 2) ? sizeof d : in.number<std::uint32_t>();
  const std::string interface_name = in.text(), module_name = in.text(), build = in.text();
  d.interface_name = (flags & 4) ? interface_name.c_str() : nullptr;
  d.module_name = (flags & 8) ? module_name.c_str() : nullptr;
  d.build_version = (flags & 16) ? build.c_str() : nullptr;
  d.interface_version = in.number<std::uint32_t>() % 4;
  const char table[64] = {};
  d.table = (flags & 32) ? table : nullptr;
  d.table_size = in.number<std::uint8_t>();
  d.startup = (flags & 64) ? &startup : nullptr;
  d.shutdown = (flags & 128) ? &shutdown : nullptr;
  hotswap::modules::interface_id expected{in.text(), in.number<std::uint32_t>() % 4, in.number<std::uint8_t>()};

  const auto problem = hotswap::modules::detail::check_descriptor(&d, expected);
  if (!problem) {
    const bool complete = d.abi_version == HOTSWAP_PLUGIN_ABI_VERSION && d.descriptor_size >= sizeof d &&
                          d.interface_name && d.module_name && d.build_version && d.table && d.startup &&
                          d.shutdown && expected.name == d.interface_name &&
                          expected.version == d.interface_version && d.table_size >= expected.table_size;
    if (!complete) std::abort();  // accepted something it must refuse
  } else if (problem->cause.empty()) {
    std::abort();
  }
  if (hotswap::modules::detail::check_descriptor(nullptr, expected) == std::nullopt) std::abort();
  return 0;
}
