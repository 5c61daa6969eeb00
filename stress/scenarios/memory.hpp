// The `memory` scenario: a version is a small immutable block of data, a call
// reads a word of it. The cheapest call there is, so the kernel's own cost
// and the swap's disturbance are what the rig measures.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "scenario.hpp"

namespace hotswap::stress {

class memory_scenario {
 public:
  static constexpr std::string_view name = "memory";
  static constexpr std::string_view description = "in-memory version (64 bytes of data); a call reads one word";

  struct version : version_base {
    explicit version(run_probe& p, std::uint64_t seed) : version_base(p) {
      for (std::size_t i = 0; i < data.size(); ++i) data[i] = seed * 0x9e3779b97f4a7c15ULL + i;
    }
    version(version&&) noexcept = default;
    std::array<std::uint64_t, 8> data{};
  };

  memory_scenario(const scenario_config&, run_probe& probe) : probe_(probe) {}

  version make() { return version(probe_, ++made_); }

  static std::uint64_t call(const version& v, std::uint64_t arg) noexcept { return v.data[arg & 7] ^ arg; }

 private:
  run_probe& probe_;
  std::atomic<std::uint64_t> made_{0};
};

}  // namespace hotswap::stress
