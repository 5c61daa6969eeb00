// Where one swap's time went, stage by stage.
//
// A request (registry::add, swap, rollback; module_slot::swap) records the
// wall-clock time of each stage it ran on the requesting thread, in order:
//
//   read       resolve, open, fstat, directory chain, read, SHA-256, allow list
//   check      ELF validation, metadata note, seal (a second pass over the
//              bytes), dependency checks
//   preflight  the child process (fork/exec, dlopen, hooks); 0 when skipped,
//              `preflight_remembered` when these bytes passed before
//              (preflight_memo.hpp)
//   shadow     shadow copy (file or sealed memfd) written from the bytes
//   dlopen     dependencies and the plugin, constructors included
//   startup, migrate, self_test   the plugin's hooks (each on a thread of its own)
//   publish    slot publish, retiring the old version, bookkeeping
//
// The replaced version's drain, shutdown and dlclose happen later, on an
// unload worker, and are not part of the request: its `unloaded` event says
// how long they took. The registry appends the stages to the audit event's
// message ("... ; 2.41 ms: read 0.08, check 0.21, ..."), so every swap line of
// the audit log says which stage a slow swap was slow in.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>

namespace hotswap::modules {

struct swap_timing {
  using duration = std::chrono::nanoseconds;
  duration read{}, check{}, preflight{}, shadow{}, dlopen{}, startup{}, migrate{}, self_test{}, publish{};
  /// The preflight was not run: these exact bytes passed it before (preflight_memo.hpp).
  bool preflight_remembered = false;

  duration total() const noexcept {
    duration sum{};
    for_each([&](const char*, duration d) { sum += d; });
    return sum;
  }

  /// f(name, duration) for each stage, in the order they run.
  template <class F>
  void for_each(F&& f) const {
    f("read", read);
    f("check", check);
    f("preflight", preflight);
    f("shadow", shadow);
    f("dlopen", dlopen);
    f("startup", startup);
    f("migrate", migrate);
    f("self_test", self_test);
    f("publish", publish);
  }
};

/// "2.41 ms: read 0.08, check 0.21, preflight 0.00 (remembered), ..." (milliseconds).
inline std::string to_string(const swap_timing& t) {
  auto ms = [](swap_timing::duration d) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f", std::chrono::duration<double, std::milli>(d).count());
    return std::string(buf);
  };
  std::string out = ms(t.total()) + " ms:";
  const char* sep = " ";
  t.for_each([&](const char* name, swap_timing::duration d) {
    out += sep;
    out += name;
    out += ' ';
    out += ms(d);
    if (std::string_view(name) == "preflight" && t.preflight_remembered) out += " (remembered)";
    sep = ", ";
  });
  return out;
}

namespace detail {

/// Adds the time from construction (or the last lap) to a stage.
class stage_clock {
 public:
  using clock = std::chrono::steady_clock;
  stage_clock() noexcept : last_(clock::now()) {}
  /// Charges the time since the last lap to `stage`.
  void lap(swap_timing::duration& stage) noexcept {
    const auto now = clock::now();
    stage += now - last_;
    last_ = now;
  }

 private:
  clock::time_point last_;
};

/// f(), its time added to `stage`.
template <class F>
auto timed(swap_timing::duration& stage, F&& f) {
  stage_clock clock;
  auto out = f();
  clock.lap(stage);
  return out;
}

}  // namespace detail

}  // namespace hotswap::modules
