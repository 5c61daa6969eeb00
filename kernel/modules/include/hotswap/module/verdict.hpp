// The canary's verdict: two sequential probability ratio tests (Wald's SPRT).
//
// Why a sequential test. A fixed threshold on a small window ("roll back after
// 5 failed checks", "error rate above 1% in the last minute") fires by chance
// on a good version with few samples and waits needlessly on a bad one with
// many. Wald's SPRT looks at the evidence after every batch and stops as soon
// as it is strong enough either way; for the same error probabilities it needs
// on average the fewest samples of any test, which is what "caught within few
// samples, never rolled back by chance" asks for.
//
// Two one-sided tests on the candidate's calls since its current step began,
// each a Bernoulli SPRT of  H0: rate = p0  against  H1: rate = p1:
//
//   errors:   p0 = stable's error rate since the canary began plus one
//             standard error (at least error_floor), p1 = p0 + max_error_increase.
//   latency:  a call is "slow" if it took longer than max_p99_ratio x stable's
//             p99 and stable's p99 + min_latency_increase (tau). p0 = stable's share of slow calls (at most 1% by
//             definition of p99; at least latency_floor), p1 = 1%: a candidate
//             whose p99 is exactly max_p99_ratio x stable's has 1% slow calls.
//
// The statistic after n calls with k "bad" ones is the log-likelihood ratio
//
//   llr = k ln(p1/p0) + (n-k) ln((1-p1)/(1-p0)),
//
// compared with Wald's bounds  A = ln((1-beta)/alpha)  (roll back: H1) and
// B = ln(beta/(1-alpha))  (this step passes: H0). alpha bounds the chance that
// a candidate as good as stable is rolled back in one step, beta the chance
// that one exactly at the limit passes a step. Rolling back needs only
// llr >= A on either test, at any sample count (at once); passing a step needs
// llr <= B on both AND min_samples calls. A step that reaches max_samples
// undecided (a candidate between H0 and H1) rolls back if either llr > 0
// (nearer H1) and passes otherwise.
//
// Limits, said plainly: p0 is estimated from stable's concurrent calls, not
// known; the test is checked per batch (each evaluate()), not per call, which
// only makes crossing a bound rarer; the calls are assumed independent (a
// correlated burst of errors counts as strong evidence, which for a canary is
// the safe side). Latency is judged at the histogram's bucket resolution
// (12.5%). Expected sample counts and the measured false-rollback rates are in
// kernel/modules/README.md (tests/modules/verdict_test.cpp).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "health.hpp"

namespace hotswap::modules {

/// What a canary must show, and how sure the verdict must be. Defaults suit a
/// service with thousands of calls per second; each says when to change it.
struct canary_policy {
  /// Candidate share per step, in basis points (1/100 of a percent). The last
  /// step must be 10000: passing it promotes the candidate to stable.
  std::vector<std::uint32_t> steps_bp{100, 500, 2500, 5000, 10000};
  /// Candidate calls a step needs before it may pass (never needed to roll back).
  std::uint64_t min_samples = 500;
  /// A step still undecided after this many candidate calls is decided by the sign of its statistic.
  std::uint64_t max_samples = 20000;
  /// The largest error-rate increase over stable that is tolerated (0.02: two points).
  double max_error_increase = 0.02;
  /// The largest ratio of the candidate's p99 to stable's that is tolerated.
  double max_p99_ratio = 1.5;
  /// Latency increases below this are never a regression: with a p99 of a few
  /// microseconds, 1.5x is scheduler noise and the cold caches of a fresh load
  /// (measured: a good candidate of a 1 us handler "failed" on them). Raise it
  /// for services whose latency is naturally noisy.
  std::chrono::nanoseconds min_latency_increase = std::chrono::microseconds(250);
  /// Per step: the chance that a candidate as good as stable is rolled back
  /// (alpha) and that one exactly at a limit passes (beta).
  double false_rollback = 0.0002;
  double missed_regression = 0.01;
  /// Error rates below this count as this (stable's 0 errors would otherwise make one candidate error decisive).
  double error_floor = 0.001;
  /// Stable's share of slow calls is taken as at least this.
  double latency_floor = 0.001;
  /// Stable calls needed before its p99 is trusted (latency test holds until then).
  std::uint64_t min_stable_samples = 1000;

  /// Shadow phase before the first step: 0 turns it off. Mirrors this share of
  /// calls (basis points) to the candidate in shadow mode...
  std::uint32_t shadow_bp = 0;
  /// ...until this many comparisons, then enters the first step if at most
  /// max_shadow_mismatch of them differed, and rolls back otherwise.
  std::uint64_t shadow_samples = 200;
  double max_shadow_mismatch = 0.0;
};

/// Empty if `p` is usable, else what is wrong with it.
inline std::string policy_problem(const canary_policy& p) {
  if (p.steps_bp.empty() || p.steps_bp.back() != 10000) return "steps must end at 100% (10000 bp)";
  for (std::size_t i = 0; i < p.steps_bp.size(); ++i)
    if (p.steps_bp[i] == 0 || p.steps_bp[i] > 10000 || (i > 0 && p.steps_bp[i] <= p.steps_bp[i - 1]))
      return "steps must rise strictly within (0, 10000] bp";
  if (!(p.max_error_increase > 0 && p.max_error_increase < 1)) return "max_error_increase must lie in (0, 1)";
  if (!(p.max_p99_ratio > 1)) return "max_p99_ratio must be above 1";
  if (p.min_latency_increase.count() < 0) return "min_latency_increase must not be negative";
  if (!(p.false_rollback > 0 && p.false_rollback < 0.5) || !(p.missed_regression > 0 && p.missed_regression < 0.5))
    return "false_rollback and missed_regression must lie in (0, 0.5)";
  if (!(p.error_floor > 0 && p.error_floor + p.max_error_increase < 1)) return "error_floor must lie in (0, 1 - max_error_increase)";
  if (!(p.latency_floor > 0 && p.latency_floor < 0.01)) return "latency_floor must lie in (0, 0.01)";
  if (p.max_samples < p.min_samples) return "max_samples must be at least min_samples";
  if (p.shadow_bp > 10000) return "shadow_bp must be at most 10000";
  if (!(p.max_shadow_mismatch >= 0 && p.max_shadow_mismatch <= 1)) return "max_shadow_mismatch must lie in [0, 1]";
  return {};
}

/// One Bernoulli SPRT's state: n calls, k bad, H0 rate p0 against H1 rate p1.
struct sprt {
  std::uint64_t n = 0, k = 0;
  double p0 = 0, p1 = 0;

  double llr() const noexcept {
    return static_cast<double>(k) * std::log(p1 / p0) +
           static_cast<double>(n - k) * std::log((1 - p1) / (1 - p0));
  }
};

enum class step_decision { hold, pass, roll_back };

inline const char* to_string(step_decision d) noexcept {
  switch (d) {
    case step_decision::hold: return "hold";
    case step_decision::pass: return "pass";
    case step_decision::roll_back: return "roll_back";
  }
  return "?";
}

/// A step's verdict with everything it was based on (the audit line's evidence).
struct step_verdict {
  step_decision decision = step_decision::hold;
  std::string reason;
  sprt errors, latency;
  double upper = 0, lower = 0;  ///< Wald's bounds A and B
  std::uint64_t stable_calls = 0, candidate_calls = 0;
  double stable_error_rate = 0, candidate_error_rate = 0;
  std::uint64_t stable_p99_ns = 0, candidate_p99_ns = 0, slow_ns = 0;

  /// One line: samples, rates, p99s, both statistics and the bounds.
  std::string evidence() const {
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "stable n=%llu err=%.4f p99=%lluus; candidate n=%llu err=%.4f p99=%lluus; "
                  "errors llr=%.2f (p0=%.4f p1=%.4f k=%llu); latency llr=%.2f (slow>%lluus p0=%.4f p1=%.4f k=%llu); "
                  "bounds [%.2f, %.2f]",
                  static_cast<unsigned long long>(stable_calls), stable_error_rate,
                  static_cast<unsigned long long>(stable_p99_ns / 1000), static_cast<unsigned long long>(candidate_calls),
                  candidate_error_rate, static_cast<unsigned long long>(candidate_p99_ns / 1000), errors.llr(), errors.p0,
                  errors.p1, static_cast<unsigned long long>(errors.k), latency.n == 0 ? 0.0 : latency.llr(),
                  static_cast<unsigned long long>(slow_ns / 1000), latency.p0, latency.p1,
                  static_cast<unsigned long long>(latency.k), lower, upper);
    return buf;
  }
};

/// Judges one step: `stable` since the canary began, `candidate` since the step began.
inline step_verdict judge_step(const health_snapshot& stable, const health_snapshot& candidate, const canary_policy& p) {
  step_verdict v;
  v.upper = std::log((1 - p.missed_regression) / p.false_rollback);
  v.lower = std::log(p.missed_regression / (1 - p.false_rollback));
  v.stable_calls = stable.calls();
  v.candidate_calls = candidate.calls();
  v.stable_error_rate = stable.error_rate();
  v.candidate_error_rate = candidate.error_rate();
  v.stable_p99_ns = stable.p(0.99);
  v.candidate_p99_ns = candidate.p(0.99);

  v.errors.n = candidate.calls();
  v.errors.k = candidate.errors;
  // Stable's rate plus one standard error: an estimate that is low by chance
  // early in a canary would otherwise read as a regression of the candidate.
  const double stable_se =
      stable.calls() == 0 ? 0.0 : std::sqrt(v.stable_error_rate * (1 - v.stable_error_rate) / stable.calls());
  v.errors.p0 = std::max(v.stable_error_rate + stable_se, p.error_floor);
  v.errors.p1 = std::min(v.errors.p0 + p.max_error_increase, 0.999);

  const bool stable_known = stable.calls() >= p.min_stable_samples;
  if (stable_known) {
    v.slow_ns = std::max(static_cast<std::uint64_t>(static_cast<double>(v.stable_p99_ns) * p.max_p99_ratio),
                         v.stable_p99_ns + static_cast<std::uint64_t>(p.min_latency_increase.count()));
    v.latency.n = candidate.calls();
    v.latency.k = candidate.slower_than(v.slow_ns);
    v.latency.p1 = 0.01;
    const double stable_slow = static_cast<double>(stable.slower_than(v.slow_ns)) / static_cast<double>(stable.calls());
    v.latency.p0 = std::clamp(stable_slow, p.latency_floor, v.latency.p1 / 2);
  }

  const double e = v.errors.llr();
  const double l = stable_known ? v.latency.llr() : 0.0;
  if (e >= v.upper) {
    v.decision = step_decision::roll_back;
    v.reason = "error rate above stable + max_error_increase";
  } else if (l >= v.upper) {
    v.decision = step_decision::roll_back;
    v.reason = "p99 above max_p99_ratio x stable";
  } else if (v.candidate_calls >= p.max_samples) {
    v.decision = (e > 0 || l > 0) ? step_decision::roll_back : step_decision::pass;
    v.reason = v.decision == step_decision::pass ? "max_samples reached, nearer the good hypothesis"
                                                  : "max_samples reached, nearer the bad hypothesis";
  } else if (e <= v.lower && stable_known && l <= v.lower && v.candidate_calls >= p.min_samples) {
    v.decision = step_decision::pass;
    v.reason = "errors and latency within limits";
  } else {
    v.reason = !stable_known ? "waiting for stable's latency baseline" : "not enough evidence yet";
  }
  return v;
}

}  // namespace hotswap::modules
