// A canary beside the stable version: keyed routing in steps, per-version
// health, an automatic verdict, call-level fallback and shadow runs.
//
// A candidate is loaded through every check a swap runs (it lives in a
// module slot of its own, so startup, self_test, drain and unload are the
// ones every version gets) and published *beside* the serving version. A
// call names a key (connection, session, user); a hash of the key against the
// candidate's weight picks the side, so one key stays on one side while the
// weight grows (1% -> 5% -> ... -> 100%), and every key returns to stable at
// a rollback.
//
//   hotswap::modules::canary& c = mods.canary("app");
//   mods.start_canary("ops", "app", "/srv/plugins/app-2.so", policy);
//   c.call(reader, connection_id, [&](const loaded_module& m, side s) { ... });
//   c.report(s, outcome::ok, elapsed);      // per call, on the caller's thread
//   c.evaluate();                           // the host's periodic tick: the verdict
//
// Cost on the call path. A call goes through the stable slot's routing word
// (routing.hpp), which it loads in place of the slot's version word. Without
// a canary that word is the serving version: the plain slot call's work, plus
// a test of a bit in a register. With one it is the route (candidate pin and
// weight): the same single read section, a hash, a compare. The route lives
// on the stable slot, so a slot has one canary (the registry makes it), and
// a hot caller can hold the slot and call its call_routed() directly: call()
// here is that plus one load (this object's reference to the slot).
// bench/module_bench.cpp measures them in one run and keeps out-of-line
// copies for reading their assembly (results/bench-canary-call.md).
//
// The route is an immutable object published with one release store and
// retired to the domain when replaced, so a caller inside a read section never
// sees it freed, and the pin it holds keeps the candidate loaded until the
// last such caller has left.
//
// Decisions (verdict.hpp) are taken by evaluate(), promote() and abort() under
// one mutex that no caller touches; each is an audit event (kind `canary`)
// with its evidence and is kept in history(). Promotion swaps the candidate's
// bytes into the stable slot (a fresh load with migrate from stable, like
// rollback) and only then removes the route, so no call ever lands on a
// version that is not loaded. Fallback: a retryable call that fails on the
// candidate (a failure result or an exception) runs once on stable; a call
// routed to stable runs there once and is never retried.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "error.hpp"
#include "health.hpp"
#include "module_loader.hpp"
#include "module_slot.hpp"
#include "record.hpp"
#include "routing.hpp"
#include "verdict.hpp"

namespace hotswap::modules {

enum class canary_phase { idle, shadow, stepping, promoted, rolled_back, aborted };

inline const char* to_string(canary_phase p) noexcept {
  switch (p) {
    case canary_phase::idle: return "idle";
    case canary_phase::shadow: return "shadow";
    case canary_phase::stepping: return "stepping";
    case canary_phase::promoted: return "promoted";
    case canary_phase::rolled_back: return "rolled_back";
    case canary_phase::aborted: return "aborted";
  }
  return "?";
}

/// One decision as kept in history() and written to the audit log.
struct canary_decision {
  std::chrono::system_clock::time_point at;
  std::string what;  ///< started, shadow_passed, step, promoted, rolled_back, aborted
  std::string principal;
  std::uint32_t weight_bp = 0;  ///< the candidate's share after the decision
  std::string evidence;
};

/// A result with the side that produced it; fell_back: the candidate failed and stable answered.
template <class R>
struct routed_result {
  R value;
  side answered = side::stable;
  bool fell_back = false;
};

/// The canary's state for status pages.
struct canary_status {
  canary_phase phase = canary_phase::idle;
  std::size_t step = 0;  ///< index into policy.steps_bp while stepping
  std::uint32_t weight_bp = 0;
  std::string file, candidate_build;
  std::uint64_t candidate_version = 0;  ///< the candidate's number in its own slot
  canary_policy policy;
  health_snapshot stable, candidate;  ///< since the canary began
  step_verdict last;                  ///< the latest evaluate()
  std::vector<std::string> shadow_examples;
};

template <class Domain = domain>
class basic_canary {
 public:
  using reader = typename Domain::reader;
  using module_type = basic_module_slot<Domain>;
  /// Publishes the candidate's bytes as the stable slot's next version (registry: audited, with history).
  using promote_fn = std::function<swap_result(const plugin_file&)>;

  /// Shadow examples kept per canary, and decisions kept in history().
  static constexpr std::size_t max_examples = 8;
  static constexpr std::size_t max_history = 64;

  basic_canary(Domain& d, module_type& stable, promote_fn promote = {})
      : domain_(d), stable_(stable), promote_(std::move(promote)) {
    if (!promote_) promote_ = [this](const plugin_file& f) { return stable_.swap(f); };
  }
  basic_canary(const basic_canary&) = delete;
  basic_canary& operator=(const basic_canary&) = delete;
  ~basic_canary() {
    std::lock_guard lock(mutex_);
    unroute();
  }

  // ---- requests ---------------------------------------------------------------

  /// Loads `file` (every check, startup, self_test) beside the serving version
  /// and routes to it: shadow first if the policy asks, else the first step.
  /// Throws module_error (and changes nothing) if it cannot.
  swap_result start(std::string_view principal, const plugin_file& file, canary_policy policy,
                    const load_request& request = {}) {
    if (const std::string problem = policy_problem(policy); !problem.empty())
      throw module_error(module_errc::bad_policy, file.path, "bad canary policy: " + problem);
    std::lock_guard lock(mutex_);
    if (active())
      throw module_error(module_errc::conflict, file.path,
                         "conflict: a canary of '" + stable_.name() + "' is already running (" +
                             status_.file + "); promote or abort it first");
    auto candidate = std::make_unique<module_type>(domain_, shared_loader(), stable_.name() + "~canary",
                                                   stable_.interface(), file, slot_options{}, request);
    if (policy.shadow_bp > 0 && !candidate->call([](const loaded_module& m) { return m.shadow_safe(); }))
      throw module_error(module_errc::bad_policy, file.path,
                         "bad policy: shadow runs asked for, but the candidate does not declare HOTSWAP_PLUGIN_SHADOW_SAFE");
    candidate_ = std::move(candidate);
    file_ = file;
    status_ = {};
    {
      std::lock_guard ex(examples_mutex_);
      examples_.clear();
    }
    status_.file = file.path.string();
    status_.policy = std::move(policy);
    status_.candidate_version = candidate_->current_version();
    auto rec = candidate_->record(status_.candidate_version);
    status_.candidate_build = rec ? rec->identity().build_version : std::string();
    stable_base_ = stable_health_.snapshot();
    canary_base_ = candidate_health_.snapshot();
    step_base_ = canary_base_;
    if (status_.policy.shadow_bp > 0) {
      status_.phase = canary_phase::shadow;
      publish_route(0, status_.policy.shadow_bp);
    } else {
      status_.phase = canary_phase::stepping;
      publish_route(status_.policy.steps_bp[0], 0);
    }
    decide("started", std::string(principal), "steps " + steps_text() + (status_.phase == canary_phase::shadow
                                                                             ? ", shadow first"
                                                                             : std::string()));
    swap_result r;
    r.version = status_.candidate_version;
    r.replaced = stable_.current_version();
    r.record = candidate_->record(r.version);
    r.replaced_record = stable_.record(r.replaced);
    r.timing = candidate_->first_timing();
    return r;
  }

  /// The host's periodic tick: judges the running step (or shadow phase) and
  /// acts on it. Returns the verdict (hold when no canary runs).
  step_verdict evaluate() {
    std::lock_guard lock(mutex_);
    if (status_.phase == canary_phase::shadow) {
      const health_snapshot c = candidate_health_.snapshot() - canary_base_;
      step_verdict v;
      v.reason = "shadow: " + std::to_string(c.shadow_compared) + " of " +
                 std::to_string(status_.policy.shadow_samples) + " comparisons";
      if (c.shadow_compared >= status_.policy.shadow_samples) {
        const double rate = static_cast<double>(c.shadow_mismatched) / static_cast<double>(c.shadow_compared);
        const std::string evidence = "shadow compared=" + std::to_string(c.shadow_compared) +
                                     " mismatched=" + std::to_string(c.shadow_mismatched) +
                                     " budget=" + std::to_string(status_.policy.max_shadow_mismatch);
        if (rate <= status_.policy.max_shadow_mismatch) {
          v.decision = step_decision::pass;
          status_.phase = canary_phase::stepping;
          step_base_ = candidate_health_.snapshot();
          publish_route(status_.policy.steps_bp[0], 0);
          decide("shadow_passed", {}, evidence);
        } else {
          v.decision = step_decision::roll_back;
          roll_back(canary_phase::rolled_back, "rolled_back", {}, "shadow mismatches over budget: " + evidence);
        }
      }
      status_.last = v;
      return v;
    }
    if (status_.phase != canary_phase::stepping) return {};
    step_verdict v = judge_step(stable_health_.snapshot() - stable_base_, candidate_health_.snapshot() - step_base_,
                                status_.policy);
    status_.last = v;
    if (v.decision == step_decision::roll_back)
      roll_back(canary_phase::rolled_back, "rolled_back", {}, v.reason + ": " + v.evidence());
    else if (v.decision == step_decision::pass)
      advance({}, v.reason + ": " + v.evidence());
    return v;
  }

  /// Manual: the next step now (from shadow: the first step; from the last: promotion).
  void promote(std::string_view principal) {
    std::lock_guard lock(mutex_);
    require_active("promote");
    if (status_.phase == canary_phase::shadow) {
      status_.phase = canary_phase::stepping;
      step_base_ = candidate_health_.snapshot();
      publish_route(status_.policy.steps_bp[0], 0);
      decide("step", std::string(principal), "manual: shadow phase ended");
      return;
    }
    advance(std::string(principal), "manual");
  }

  /// Manual: every call back to stable at once; the candidate unloads once drained.
  void abort(std::string_view principal, const std::string& why = "manual") {
    std::lock_guard lock(mutex_);
    require_active("abort");
    roll_back(canary_phase::aborted, "aborted", std::string(principal), why);
  }

  // ---- callers ----------------------------------------------------------------

  /// f(const loaded_module&, side) on the side `key` is routed to, inside one read section.
  template <class F>
  decltype(auto) call(reader& r, std::uint64_t key, F&& f) const {
    return stable_.call_routed(r, key, std::forward<F>(f));
  }
  template <class F>
  decltype(auto) call(std::uint64_t key, F&& f) const {
    return call(domain_.this_thread(), key, std::forward<F>(f));
  }

  /// Like call(); if the call is `retryable` and the candidate's answer
  /// `failed(answer)` or it threw, runs it once on stable instead, in the same
  /// read section (counted as the candidate's fallback). A non-retryable call
  /// runs exactly once.
  template <class F, class Failed>
  auto call_with_fallback(reader& r, std::uint64_t key, bool retryable, F&& f, Failed&& failed) const
      -> routed_result<std::invoke_result_t<F&, const loaded_module&, side>> {
    using R = std::invoke_result_t<F&, const loaded_module&, side>;
    return stable_.with_routing(r, [&](const loaded_module& stable, const canary_route<Domain>* c) -> routed_result<R> {
      if (c == nullptr || !c->takes(key)) return {f(stable, side::stable), side::stable, false};
      if (!retryable) return {f(c->candidate.value(), side::candidate), side::candidate, false};
      std::optional<R> answer;
      try {
        answer.emplace(f(c->candidate.value(), side::candidate));
      } catch (...) {  // an exception at the ABI boundary: a failure like any other
      }
      if (answer && !failed(*answer)) return {std::move(*answer), side::candidate, false};
      candidate_health_.record_fallback();
      return {f(stable, side::stable), side::stable, true};
    });
  }

  /// A pin on the side `key` is routed to now: a pinned session keeps it to its end.
  routed_pin<Domain> pin(reader& r, std::uint64_t key) const {
    if (stable_.routed_now()) {
      hotswap::pin<loaded_module, Domain> p = candidate_pin(r, key, &canary_route<Domain>::takes);
      if (p) return {std::move(p), side::candidate};
    }
    return {stable_.pin(r), side::stable};
  }

  routed_pin<Domain> pin(std::uint64_t key) const { return pin(domain_.this_thread(), key); }

  /// In the shadow phase, a pin on the candidate if `key` is sampled for a
  /// shadow run; empty otherwise. The host runs the call on it with the
  /// interface's discard-side-effects flag, compares, and report_shadow()s.
  hotswap::pin<loaded_module, Domain> shadow_for(reader& r, std::uint64_t key) const {
    if (!stable_.routed_now()) return {};
    return candidate_pin(r, key, &canary_route<Domain>::shadows);
  }

  hotswap::pin<loaded_module, Domain> shadow_for(std::uint64_t key) const {
    return shadow_for(domain_.this_thread(), key);
  }

  // ---- health -------------------------------------------------------------

  /// The outcome of one call on side `s` (the side call() passed to f).
  void report(side s, outcome o, std::chrono::nanoseconds latency) noexcept {
    (s == side::stable ? stable_health_ : candidate_health_).record(o, latency);
  }
  /// A candidate call the host re-ran on stable itself (asynchronous hosts; call_with_fallback counts its own).
  void report_fallback() noexcept { candidate_health_.record_fallback(); }
  /// A shadow run's comparison; on a mismatch `example` (what differed) is kept, up to max_examples.
  void report_shadow(bool matched, std::string_view example = {}) {
    candidate_health_.record_shadow(matched);
    if (matched) return;
    std::lock_guard lock(examples_mutex_);
    if (examples_.size() < max_examples) examples_.emplace_back(example);
  }

  const version_health& health(side s) const noexcept { return s == side::stable ? stable_health_ : candidate_health_; }

  canary_status status() const {
    std::lock_guard lock(mutex_);
    canary_status s = status_;
    s.stable = stable_health_.snapshot() - stable_base_;
    s.candidate = candidate_health_.snapshot() - canary_base_;
    std::lock_guard ex(examples_mutex_);
    s.shadow_examples = examples_;
    return s;
  }
  std::vector<canary_decision> history() const {
    std::lock_guard lock(mutex_);
    return {history_.begin(), history_.end()};
  }
  bool running() const {
    std::lock_guard lock(mutex_);
    return active();
  }
  const module_type& stable() const noexcept { return stable_; }

 private:
  // A pin on the candidate if a route is published and `picks` the key; empty otherwise.
  hotswap::pin<loaded_module, Domain> candidate_pin(reader& r, std::uint64_t key,
                                                    bool (canary_route<Domain>::*picks)(std::uint64_t) const noexcept) const {
    return stable_.with_routing(r, [&](const loaded_module&, const canary_route<Domain>* c) {
      return c != nullptr && (c->*picks)(key) ? c->candidate : hotswap::pin<loaded_module, Domain>{};
    });
  }

  bool active() const noexcept {
    return status_.phase == canary_phase::shadow || status_.phase == canary_phase::stepping;
  }
  void require_active(const char* what) const {
    if (!active())
      throw module_error(module_errc::conflict, stable_.name(),
                         std::string("conflict: no canary of '") + stable_.name() + "' is running to " + what);
  }

  // The candidate shares the stable slot's loader (shadow store, log, counters,
  // limits), which outlives both slots: a non-owning handle.
  std::shared_ptr<const module_loader> shared_loader() const {
    return std::shared_ptr<const module_loader>(std::shared_ptr<const module_loader>{}, &stable_.loader());
  }

  // Under mutex_.
  void publish_route(std::uint32_t weight_bp, std::uint32_t shadow_bp) {
    stable_.route_canary(candidate_->pin(), weight_bp, shadow_bp);
    status_.weight_bp = weight_bp;
  }
  // Under mutex_: every caller back to stable; the candidate drains and unloads.
  void unroute() {
    if (!candidate_) return;
    stable_.unroute_canary();
    status_.weight_bp = 0;
    candidate_.reset();  // its serving hold goes; the retired route's pin keeps it until callers left
  }

  // Under mutex_.
  void advance(const std::string& principal, const std::string& evidence) {
    const auto& steps = status_.policy.steps_bp;
    if (status_.step + 1 < steps.size()) {
      ++status_.step;
      step_base_ = candidate_health_.snapshot();
      publish_route(steps[status_.step], 0);
      decide("step", principal, evidence);
      return;
    }
    try {
      const swap_result r = promote_(file_);
      status_.phase = canary_phase::promoted;
      unroute();
      stable_base_ = stable_health_.snapshot();
      decide("promoted", principal, evidence + "; stable is now version " + std::to_string(r.version));
    } catch (const module_error& e) {
      roll_back(canary_phase::rolled_back, "rolled_back", principal, std::string("promotion failed: ") + e.what());
    }
  }

  // Under mutex_.
  void roll_back(canary_phase to, const char* what, const std::string& principal, const std::string& evidence) {
    status_.phase = to;
    unroute();
    decide(what, principal, evidence);
  }

  // Under mutex_: one history entry and one audit event.
  void decide(const char* what, std::string principal, const std::string& evidence) {
    canary_decision d{std::chrono::system_clock::now(), what, std::move(principal), status_.weight_bp, evidence};
    const std::uint64_t stable_version = stable_.current_version();
    auto stable_rec = stable_.record(stable_version);
    stable_.loader().emit({module_event_kind::canary, d.principal, stable_.name(), status_.file, stable_version,
                           status_.candidate_version, stable_rec ? stable_rec->identity().build_version : std::string(),
                           status_.candidate_build,
                           d.what + " weight=" + std::to_string(d.weight_bp) + "bp: " + d.evidence});
    history_.push_back(std::move(d));
    while (history_.size() > max_history) history_.pop_front();
  }

  std::string steps_text() const {
    std::string out;
    for (std::uint32_t bp : status_.policy.steps_bp) out += (out.empty() ? "" : ",") + std::to_string(bp) + "bp";
    return out;
  }

  Domain& domain_;
  module_type& stable_;
  promote_fn promote_;
  // Below: written only under mutex_ (health objects: by callers, per thread).
  mutable std::mutex mutex_;
  std::unique_ptr<module_type> candidate_;
  plugin_file file_;
  canary_status status_;
  health_snapshot stable_base_, canary_base_, step_base_;
  std::deque<canary_decision> history_;
  mutable version_health stable_health_, candidate_health_;
  mutable std::mutex examples_mutex_;
  std::vector<std::string> examples_;
};

using canary = basic_canary<domain>;

}  // namespace hotswap::modules
