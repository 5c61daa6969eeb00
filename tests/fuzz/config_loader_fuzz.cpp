// libFuzzer target: hotswap::config's loader and validator on arbitrary
// bytes, with a schema that uses every rule kind, and without a schema. No
// input may crash, leak or trip a sanitizer; every refusal must carry a
// position inside the file; and whatever loads must survive a round trip
// through to_toml() unchanged (write-to-disk relies on that).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <hotswap/config/diff.hpp>
#include <hotswap/config/loader.hpp>
#include <hotswap/config/schema.hpp>

namespace {

namespace cfg = hotswap::config;

const cfg::schema& rules() {
  static const cfg::schema s = [] {
    cfg::schema r;
    r.integer("a").range(-5, 1000).required();
    r.floating("ratio").range(0, 1).default_to(0.5);
    r.boolean("flag").default_to(false);
    r.string("level").one_of({"low", "high"}).default_to("low");
    r.string("name").pattern("[a-z]{1,8}").default_to("x");
    r.string_list("tags");
    r.integer_list("limits.ports").range(1, 65535);
    r.string_map("routes");
    r.map_of("weights", cfg::value_type::floating);
    r.validator([](const cfg::snapshot& c) -> std::optional<cfg::veto> {
      if (c.integer("a") == 13) return cfg::veto{"a", "unlucky"};
      return std::nullopt;
    });
    return r;
  }();
  return s;
}

void check(const cfg::load_result& r, const cfg::schema* s) {
  if (!r) {
    if (r.error.line == 0 || r.error.column == 0 || r.error.reason.empty()) std::abort();
    return;
  }
  const auto again = cfg::load(cfg::to_toml(r.doc->values, r.doc->history_major), "round-trip", s);
  if (!again) std::abort();
  // NaN is the one value unequal to itself; anything else must come back.
  bool has_nan = false;
  for (const auto& [k, v] : r.doc->values.values())
    if (const double* d = std::get_if<double>(&v); d != nullptr && *d != *d) has_nan = true;
  if (!has_nan && !cfg::diff(r.doc->values, again.doc->values).empty()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  check(cfg::load(text, "fuzz.toml", &rules(), {.max_bytes = 1 << 16}), &rules());
  check(cfg::load(text, "fuzz.toml", nullptr, {.max_bytes = 1 << 16}), nullptr);
  return 0;
}
