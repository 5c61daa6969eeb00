// The core's real headers under the C++ memory model, with Relacy.
//
// HOTSWAP_RELACY switches kernel/core's primitives to Relacy's (see
// <hotswap/detail/atomic.hpp> and <hotswap/detail/relacy.hpp>): the scenarios
// below instantiate the real basic_domain, slot and pin, and Relacy runs their
// threads under many schedules, letting every load read any value the model
// allows. A version's payload is an rl::var: a caller reading it and the
// reclaimer's destructor poisoning it race unless the protocol orders them,
// so "no failure found" means "no use after reclaim under any execution
// Relacy tried". Labels (EG.*, QS.*, TR.*, RT.*, PC.*) are those of the headers.
//
// Each mutant weakens one ordering in the real header (detail::weakened(),
// constant false outside this test) and must be caught.
//
// What Relacy cannot show, and why: its modification order of an atomic
// follows execution order, so the lost update PC.P3 prevents (a store placed
// later in modification order than an RMW that executed after it) never
// happens here; pin_counter.hpp says why no checker run here can show it.
//
// Usage: relacy_kernel_model <test> [mutant]. Prints "no failure found" or
// "FAILURE FOUND"; exit 0 when no failure was found.
#define HOTSWAP_RELACY 1

#include <chrono>
#include <cstdio>
#include <string>

#include <hotswap/domain.hpp>
#include <hotswap/pin.hpp>
#include <hotswap/qsbr_grace.hpp>
#include <hotswap/slot.hpp>

namespace model {

namespace relacy = hotswap::detail::relacy;
using hotswap::detail::mutant;

constexpr int dead = -1;

struct options {
  bool fence_mode = false;
};
inline options opt;  // set by main() before each simulation

inline hotswap::detail::atomic<int>* destroyed = nullptr;  // counts payload destructions, if set

// What a version holds: one rl::var, poisoned by the destructor.
struct payload {
  explicit payload(int v) { value($) = v; }
  payload(payload&& other) noexcept {
    value($) = static_cast<int>(other.value($));
    other.moved_from = true;
  }
  ~payload() {
    if (moved_from) return;
    value($) = dead;
    if (destroyed != nullptr) destroyed->fetch_add(1, std::memory_order_relaxed);
  }
  void check() const { RL_ASSERT(static_cast<int>(value($)) != dead); }

  mutable rl::var<int> value;
  bool moved_from = false;
};

hotswap::domain_options domain_options(bool fence_mode) {
  hotswap::domain_options o;
  o.grace = fence_mode ? hotswap::grace_mode::fence : hotswap::grace_mode::membarrier;
  o.reclaim = hotswap::reclaim_mode::manual;  // rounds run on the test's threads
  o.membarrier_after = std::chrono::nanoseconds(0);  // as a long-idle reader: straight to the membarrier
  o.stall_threshold = std::chrono::hours(1);  // a sleep bounded only by it counts as unbounded
  return o;
}

// Threads of a scenario end as real threads do (relacy::thread_exit()).
template <class Test, unsigned Threads, class Domain = hotswap::domain>
struct scenario : rl::test_suite<Test, Threads> {
  relacy::environment env{Threads, !opt.fence_mode};
  Domain dom{domain_options(opt.fence_mode)};
  hotswap::slot<payload, Domain> s{dom, "v1", hotswap::slot_options{}, 100};
  hotswap::detail::atomic<int> ready{0};

  void read(typename Domain::reader& r) {
    s.call(r, [](const payload& p) { p.check(); });
  }
  // slot::publish + the reclaimer's round: the replaced version's destructor
  // poisons its payload after the grace period.
  void publish_and_reclaim() {
    RL_ASSERT(s.publish(payload(200), "v2"));
    dom.barrier();
  }
  void wait_ready(int n) {
    while (ready.load(std::memory_order_acquire) < n) rl::yield(1, $);
  }
};

// A reader with a claimed record against a writer (fence or membarrier
// mode); nothing orders the two but the protocol. Relacy picks how long the
// reader's first section lasts: not at all, until the grace period has
// begun, or (membarrier mode) until its membarrier has returned, so that it
// ends anywhere in the writer's wait. Either section may see either version.
struct grace_test : scenario<grace_test, 2> {
  void thread(unsigned id) {
    if (id == 0) {
      auto& r = dom.attach();
      s.call(r, [&](const payload& p) {
        // Relaxed reads of statistics counters: they order nothing.
        switch (rl::rand(opt.fence_mode ? 2 : 3)) {
          case 1:
            while (dom.grace_statistics().grace_periods == 0) rl::yield(1, $);
            break;
          case 2:  // (a grace period that finds the reader done needs no membarrier)
            while (dom.grace_statistics().membarriers == 0 && writer_done.load(std::memory_order_relaxed) == 0)
              rl::yield(1, $);
            break;
        }
        p.check();
      });
      read(r);
    } else {
      publish_and_reclaim();
      writer_done.store(1, std::memory_order_relaxed);
    }
    relacy::thread_exit();
  }
  hotswap::detail::atomic<int> writer_done{0};
};

// A thread linking a brand-new record (its first section), against a writer.
// Relacy picks when the thread starts: at once, or once the grace period has
// begun (so that its link and the grace period's walk of the list meet).
struct claim_new_test : scenario<claim_new_test, 2> {
  void thread(unsigned id) {
    if (id == 0) {
      // Relaxed reads of a statistics counter: they order nothing.
      if (rl::rand(2) == 1)
        while (dom.grace_statistics().grace_periods == 0) rl::yield(1, $);
      read(dom.this_thread());
    }
    else publish_and_reclaim();
    relacy::thread_exit();
  }
};

// A thread claiming a free record (linked and given back earlier), then reading.
struct claim_free_test : scenario<claim_free_test, 2> {
  void before() {
    dom.attach();
    dom.detach();
  }
  void thread(unsigned id) {
    if (id == 0) read(dom.this_thread());
    else publish_and_reclaim();
    relacy::thread_exit();
  }
};

// qsbr_grace: a registered thread reads, announces a quiescent state, goes
// offline and online again, reads, and gives its record back at exit, against
// a writer that publishes, waits (sleeping on the futex once it asked to be
// woken) and reclaims.
struct qsbr_test : scenario<qsbr_test, 2, hotswap::qsbr_domain> {
  void thread(unsigned id) {
    if (id == 0) {
      auto& r = dom.attach();  // online from here
      ready.store(1, std::memory_order_release);
      read(r);
      r.quiescent();
      read(r);
      r.offline();
      r.online();
      read(r);
    } else {
      wait_ready(1);
      publish_and_reclaim();
    }
    relacy::thread_exit();
  }
};

// retire() then barrier() on one thread; the reclaimer's rounds (poll()) on
// another, the first taking an earlier retire (so a round can start just
// before ours is pushed): barrier() returns only after our deleter ran.
struct retire_barrier_test : scenario<retire_barrier_test, 2> {
  struct node {
    rl::var<int> value;
  };
  rl::var<int> reclaimed;

  void before() {
    reclaimed($) = 0;
    dom.retire(new node, [](node* earlier) { delete earlier; });
  }
  void thread(unsigned id) {
    if (id == 0) {
      auto* n = new node;
      n->value($) = 42;
      dom.retire(n, [this](node* done) {
        RL_ASSERT(done->value($) == 42);
        reclaimed($) = 1;
        delete done;
      });
      dom.barrier();
      RL_ASSERT(reclaimed($) == 1);
    } else {
      dom.poll();
      dom.poll();
    }
    relacy::thread_exit();
  }
};

// Two pins (one copied, through the central counter if the copy comes after
// parking) released while the reclaimer parks the replaced version; it is
// destroyed exactly once, after its last use.
struct pin_park_test : scenario<pin_park_test, 3> {
  hotswap::detail::atomic<int> destroyed_count{0};

  pin_park_test() { destroyed = &destroyed_count; }
  ~pin_park_test() { destroyed = nullptr; }
  void after() { RL_ASSERT(destroyed_count.load(std::memory_order_relaxed) == 1); }

  void thread(unsigned id) {
    if (id == 0) {
      auto p = s.pin(dom.this_thread());
      ready.fetch_add(1, std::memory_order_release);
      p->check();
      p.reset();
    } else if (id == 1) {
      auto p = s.pin(dom.this_thread());
      ready.fetch_add(1, std::memory_order_release);
      p->check();
      auto copy = p;
      copy->check();
      p.reset();
      copy->check();
      copy.reset();
    } else {
      wait_ready(2);
      publish_and_reclaim();  // parks the version; the last release re-retires it
      while (s.draining() != 0) {
        dom.poll();
        rl::yield(1, $);
      }
    }
    relacy::thread_exit();
  }
};

template <class Test>
bool run(unsigned iterations) {
  rl::test_params p;
  p.iteration_count = iterations;
  p.search_type = rl::random_scheduler_type;
  p.execution_depth_limit = 100000;  // a grace period polls: many scheduling points
  return rl::simulate<Test>(p);
}

}  // namespace model

int main(int argc, char** argv) {
  using namespace model;
  struct named_mutant {
    const char* name;
    mutant weaken;
  };
  static constexpr named_mutant mutants[] = {
      {"none", mutant::none},
      {"no_reader_fence", mutant::no_reader_fence},
      {"no_membarrier", mutant::no_membarrier},
      {"no_claim_fence", mutant::no_claim_fence},
      {"retire_store_buffering", mutant::retire_store_buffering},
      {"pin_release_relaxed", mutant::pin_release_relaxed},
      {"flag_after_membarrier", mutant::flag_after_membarrier},
      {"late_futex_read", mutant::late_futex_read},
      {"trust_earlier_raise", mutant::trust_earlier_raise},
      {"qsbr_announce_relaxed", mutant::qsbr_announce_relaxed},
      {"qsbr_no_online_fence", mutant::qsbr_no_online_fence},
      {"qsbr_no_wake_fence", mutant::qsbr_no_wake_fence},
      {"qsbr_exit_without_wake", mutant::qsbr_exit_without_wake},
  };
  // Each test: its name, whether it runs in fence mode, and the simulation.
  struct named_test {
    const char* name;
    bool fence_mode;
    bool (*run)(unsigned);
  };
  static constexpr named_test tests[] = {
      {"grace_fence", true, run<grace_test>},
      {"grace_membarrier", false, run<grace_test>},
      {"claim_new", false, run<claim_new_test>},
      {"claim_new_fence", true, run<claim_new_test>},  // the fence-mode reader's own EG.F covers the claim (no mutant)
      {"claim_free", false, run<claim_free_test>},
      {"retire_barrier", true, run<retire_barrier_test>},
      {"pin_park", true, run<pin_park_test>},
      {"qsbr", true, run<qsbr_test>},  // qsbr has no membarrier: no IPIs to model
  };
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s TEST [MUTANT] [ITERATIONS]; tests:", argv[0]);
    for (const named_test& t : tests) std::fprintf(stderr, " %s", t.name);
    std::fprintf(stderr, "\n");
    return 2;
  }
  const std::string test = argv[1];
  const std::string m = argc > 2 ? argv[2] : "none";
  const unsigned iterations = argc > 3 ? static_cast<unsigned>(std::stoul(argv[3])) : 200000;
  const named_mutant* chosen_mutant = nullptr;
  for (const named_mutant& n : mutants)
    if (m == n.name) chosen_mutant = &n;
  if (chosen_mutant == nullptr) {
    std::fprintf(stderr, "unknown mutant %s\n", m.c_str());
    return 2;
  }
  const named_test* chosen_test = nullptr;
  for (const named_test& t : tests)
    if (test == t.name) chosen_test = &t;
  if (chosen_test == nullptr) {
    std::fprintf(stderr, "unknown test %s\n", test.c_str());
    return 2;
  }
  relacy::weakened_step = chosen_mutant->weaken;
  opt.fence_mode = chosen_test->fence_mode;
  const bool ok = chosen_test->run(iterations);
  std::printf("%s [%s]: %s\n", test.c_str(), m.c_str(), ok ? "no failure found" : "FAILURE FOUND");
  return ok ? 0 : 1;
}
