// libFuzzer target: a running hotswap::config::store saving arbitrary bytes,
// and a restart on them (issue #17: a file toml++ survived in the loader
// still killed the store, and a restart crashed in the constructor before the
// history fallback could run). For each input, in a directory on tmpfs:
//   save:    the input becomes the main file and the store handles it; it is
//            applied (then it loads on its own and the store serves exactly
//            its values) or refused (then the serving version is unchanged and
//            the error names the file with a position);
//   restart: a new store on that directory serves the input, or the newest
//            valid history file, and never throws (history always holds one);
//   then the main file goes back to the seed and the first store takes it.
// History and error copies are pruned to a few, so a run's disk use is bounded.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include <hotswap/config/loader.hpp>
#include <hotswap/config/store.hpp>

namespace {

namespace cfg = hotswap::config;
namespace fs = std::filesystem;

constexpr std::string_view seed = "a = 1\nname = \"x\"\n";

cfg::schema rules() {
  cfg::schema r;
  r.integer("a").range(-5, 1000).required();
  r.string("name").pattern("[a-z]{1,8}").default_to("x");
  r.floating("ratio").range(0, 1).default_to(0.5);
  r.string_list("tags");
  r.string_map("routes");
  return r;
}

cfg::store_options options() {
  cfg::store_options o;
  o.history_keep = 4;
  o.error_keep = 4;
  o.limits.max_bytes = 1 << 16;
  o.log = [](cfg::log_level, const std::string&) {};
  return o;
}

void write(const fs::path& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
}

struct fixture {
  fixture() {
    std::string pattern = (fs::exists("/dev/shm") ? std::string("/dev/shm") : fs::temp_directory_path().string()) +
                          "/hotswap-config-fuzz-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    dir = pattern;
    main = dir / "app.toml";
    write(main, seed);
    running = std::make_unique<cfg::store>(dom, main, schema, options());
  }
  ~fixture() {
    running.reset();
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  hotswap::domain dom;
  cfg::schema schema = rules();
  fs::path dir, main;
  std::unique_ptr<cfg::store> running;
};

fixture& the() {
  static fixture f;
  return f;
}

void require(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fixture& f = the();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto alone = cfg::load(text, f.main.string(), &f.schema, options().limits);

  // Save under the running store.
  const auto before = f.running->version();
  write(f.main, text);
  const auto saved = f.running->reload();
  if (saved.result == cfg::save_report::outcome::rejected) {
    require(saved.error && saved.error->file == f.main.string() && saved.error->line >= 1 && saved.error->column >= 1);
    require(f.running->version() == before);
  } else {
    require(alone && *f.running->read() == alone.doc->values);
  }

  // Restart on the same directory.
  {
    cfg::store restarted(f.dom, f.main, f.schema, options());
    if (alone) require(*restarted.read() == alone.doc->values);
  }

  // Back to the seed for the next input.
  write(f.main, seed);
  const auto reset = f.running->reload();
  require(reset.result != cfg::save_report::outcome::rejected);
  return 0;
}
