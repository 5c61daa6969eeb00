// Host upgrade, both sides (see upgrade.hpp): the running server's admin call
// that starts the new binary and hands everything over, and the new binary's
// takeover in start().
#include "upgrade.hpp"

#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <future>
#include <hotswap/thread_name.hpp>
#include <nlohmann/json.hpp>

#include "admin_service.hpp"
#include "server_impl.hpp"

namespace hotswap::http {

using namespace detail;
using json = nlohmann::json;

namespace {

using steady = std::chrono::steady_clock;

std::chrono::milliseconds left_until(steady::time_point t) {
  return std::max(std::chrono::milliseconds(1), std::chrono::duration_cast<std::chrono::milliseconds>(t - steady::now()));
}

// The binary an upgrade may start: an absolute path to an executable regular
// file that only its owner (this user or root) can change, as a plugin must be.
void check_binary(const std::string& binary) {
  auto refuse = [&](const std::string& why) { return upgrade_refusal{403, "binary " + binary + ": " + why}; };
  if (binary.empty() || binary.front() != '/') throw upgrade_refusal{400, "malformed body: \"binary\" must be an absolute path"};
  for (const char c : binary)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) throw refuse("control character in the path");
  struct stat st {};
  if (::stat(binary.c_str(), &st) != 0) throw refuse(std::string("cannot be read: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw refuse("not a regular file");
  if (st.st_uid != ::geteuid() && st.st_uid != 0) throw refuse("must belong to this server's user or to root");
  if ((st.st_mode & 022) != 0) throw refuse("must not be writable by group or others");
  if (::access(binary.c_str(), X_OK) != 0) throw refuse("not executable");
}

// posix_spawn (no copy of this multi-threaded process, nothing run between
// fork and exec) with only stdin, stdout and stderr inherited, and no signal
// blocked (the admin pool's threads block them all, and exec keeps the mask).
pid_t spawn(const std::vector<std::string>& args) {
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t files;
  posix_spawnattr_t attr;
  ::posix_spawn_file_actions_init(&files);
  ::posix_spawn_file_actions_addclosefrom_np(&files, 3);
  ::posix_spawnattr_init(&attr);
  sigset_t none;
  ::sigemptyset(&none);
  ::posix_spawnattr_setsigmask(&attr, &none);
  ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, argv[0], &files, &attr, argv.data(), environ);
  ::posix_spawnattr_destroy(&attr);
  ::posix_spawn_file_actions_destroy(&files);
  if (rc != 0) throw upgrade_refusal{422, "upgrade failed; this server serves on: cannot start " + args[0] + ": " + std::strerror(rc)};
  return pid;
}

std::string exit_text(int status) {
  if (WIFEXITED(status))
    return "exited with status " + std::to_string(WEXITSTATUS(status)) +
           (WEXITSTATUS(status) == 127 ? " (could not be executed)" : "");
  if (WIFSIGNALED(status)) return std::string("killed by signal ") + std::to_string(WTERMSIG(status)) + " (" + ::strsignal(WTERMSIG(status)) + ")";
  return "ended";
}

// Stops and reaps a new process that failed: SIGTERM, then SIGKILL after 5 s.
std::string stop_child(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, WNOHANG) == pid) return exit_text(status);
  ::kill(pid, SIGTERM);
  for (int i = 0; i < 500; ++i) {
    if (::waitpid(pid, &status, WNOHANG) == pid) return "stopped; it " + exit_text(status);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return "killed after 5 s";
}

tcp protocol_of(int fd) {
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return a.ss_family == AF_INET6 ? tcp::v6() : tcp::v4();
}

json event_json(const modules::module_event& e) {
  return {{"kind", static_cast<int>(e.kind)}, {"principal", e.principal}, {"module", e.module},
          {"file", e.file},                   {"from_version", e.from_version}, {"to_version", e.to_version},
          {"from_build", e.from_build},       {"to_build", e.to_build},     {"message", e.message}};
}

}  // namespace

// ---- the running server: POST /admin/upgrade ------------------------------------

std::string server::impl::carried_state() {
  json modules_now = json::array();
  for (const auto& name : registry->names()) {
    const std::uint64_t serving = registry->module(name).current_version();
    for (const modules::version_report& v : registry->status(name))
      if (v.number == serving)
        modules_now.push_back({{"name", name}, {"version", v.number}, {"file", v.id.file}, {"sha256", v.id.sha256},
                               {"build", v.id.build_version}});
  }
  json routes_now = json::array();
  for (const auto& r : *routes.read())  // the live table; its policy is a flag, no partner
    routes_now.push_back({{"prefix", r->prefix}, {"policy", to_string(r->policy.load(std::memory_order_relaxed))}});
  json events = json::array();
  for (const auto& e : audit->recent()) events.push_back(event_json(e));
  return json{{"metrics", metrics_text()}, {"modules", modules_now}, {"routes", routes_now}, {"audit", events}}.dump(
      -1, ' ', false, json::error_handler_t::replace);
}

std::string server::impl::upgrade(const std::string& principal, const std::string& binary) {
  std::unique_lock lock(upgrade_mutex, std::try_to_lock);
  if (!lock.owns_lock()) throw upgrade_refusal{409, "conflict: an upgrade is already running"};
  if (stopping.load(std::memory_order_relaxed)) throw upgrade_refusal{409, "conflict: the server is stopping"};  // a flag
  for (const auto& name : registry->names())
    if (registry->canary(name).running())
      throw upgrade_refusal{409, "conflict: a canary of '" + name + "' is running; promote or abort it first"};
  check_binary(binary);
  if (config.arguments.empty())
    throw upgrade_refusal{422, "this server was not started from hotswap-httpd's command line: nothing to start " + binary + " with"};

  const auto started = steady::now();
  const auto deadline = started + upgrade_timeout();
  audit->note(principal, "upgrade", "starting " + binary);
  takeover_listener socket({});
  std::vector<std::string> args{binary};
  args.insert(args.end(), config.arguments.begin(), config.arguments.end());
  args.insert(args.end(), {"--takeover", socket.path().string()});
  const pid_t pid = spawn(args);
  auto fail = [&](const std::string& why) {
    const std::string end = stop_child(pid);
    upgrades_failed.fetch_add(1, std::memory_order_relaxed);  // a statistic
    audit->note(principal, "upgrade", "failed, serving on: " + why + " (new process " + std::to_string(pid) + " " + end + ")");
    return upgrade_refusal{422, "upgrade failed; this server serves on: " + why + " (the new process " + end + ")"};
  };

  // The new process connects once it has loaded everything (or to say why it cannot).
  std::unique_ptr<takeover_channel> channel;
  std::string refused;
  while (!channel) {
    int status = 0;
    const bool exited = ::waitpid(pid, &status, WNOHANG) == pid;
    if (auto fd = socket.accept_from(pid, exited ? std::chrono::milliseconds(0) : std::chrono::milliseconds(20), refused)) {
      channel = std::make_unique<takeover_channel>(*fd);
    } else if (!refused.empty()) {
      std::fprintf(stderr, "upgrade: %s\n", refused.c_str());
      refused.clear();
    } else if (exited) {
      upgrades_failed.fetch_add(1, std::memory_order_relaxed);  // a statistic
      const std::string why = "the new process " + exit_text(status) + " before taking over";
      audit->note(principal, "upgrade", "failed, serving on: " + why);
      throw upgrade_refusal{422, "upgrade failed; this server serves on: " + why};
    } else if (steady::now() > deadline) {
      throw fail("the new process did not connect within timeouts.upgrade_timeout_ms");
    }
  }
  try {
    channel->expect(takeover_kind::hello, left_until(deadline));
    channel->send(takeover_kind::state, carried_state());
    channel->expect(takeover_kind::loaded, left_until(deadline));
    std::vector<int> fds;
    for (const auto& w : workers)
      for (const auto& l : w->listeners) fds.push_back(l->acceptor.native_handle());
    const std::size_t app = fds.size();
    const auto [admin_tcp, admin_unix] = admin ? admin->listener_fds() : std::pair{-1, -1};
    if (admin_tcp >= 0) fds.push_back(admin_tcp);
    if (admin_unix >= 0) fds.push_back(admin_unix);
    channel->send(takeover_kind::listeners,
                  json{{"app", app}, {"admin_tcp", admin_tcp >= 0}, {"admin_unix", admin_unix >= 0}}.dump(), fds);
    channel->expect(takeover_kind::ready, left_until(deadline));
  } catch (const takeover_error& e) {
    throw fail(e.what());
  }

  // The new process accepts on the same sockets: stop accepting here and pass
  // every connection on at its next idle moment.
  const auto ready = steady::now();
  handoff.open(channel.get());
  handing_over.store(true, std::memory_order_relaxed);  // read on the workers after the posts below
  for (auto& w : workers)
    net::post(w->io, [&w = *w] {
      close_listeners(w);
      w.connections->hand_over_all();
    });
  if (admin) {
    std::promise<void> closed;
    net::post(control, [&] {
      admin->hand_over_listeners();
      closed.set_value();
    });
    closed.get_future().wait();
  }
  auto drained = [&](steady::time_point until) {
    // Relaxed: a count polled until it reaches zero; the handoff's mutex orders the sends.
    while (open_connections.load(std::memory_order_relaxed) != 0 && steady::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return open_connections.load(std::memory_order_relaxed);
  };
  const std::size_t busy = drained(ready + upgrade_drain());
  if (busy != 0) {  // answered here with Connection: close
    for (auto& w : workers) net::post(w->io, [&w = *w] { w.connections->shut_down_all(); });
    const detail::connection_limits now = limits.load();
    drained(steady::now() + now.write_timeout + now.read_timeout);
  }
  handoff.open(nullptr);
  const auto done = steady::now();
  const json outcome{{"pid", pid},
                     {"binary", binary},
                     {"connections_handed_over", handoff.passed()},
                     {"connections_closed_at_deadline", busy},
                     {"connections_lost", handoff.lost()},
                     {"start_to_ready_ms", std::chrono::duration<double, std::milli>(ready - started).count()},
                     {"handover_ms", std::chrono::duration<double, std::milli>(done - ready).count()}};
  try {  // with the counters as they end here: what was served while handing over too
    json last = outcome;
    last["metrics"] = metrics_text();
    channel->send(takeover_kind::done, last.dump(-1, ' ', false, json::error_handler_t::replace));
  } catch (const takeover_error&) {  // the new process is gone: it found out itself
  }
  audit->note(principal, "upgrade",
              "done: pid " + std::to_string(pid) + " took over; " + std::to_string(handoff.passed()) +
                  " connections handed over, " + std::to_string(busy) + " answered with Connection: close");
  return outcome.dump() + "\n";
}

void server::impl::upgrade_finished() {
  stop();
  if (on_upgraded) on_upgraded();
}

// ---- the new binary: --takeover ------------------------------------------------

void server::impl::take_over() {
  takeover = std::make_unique<takeover_channel>(connect_takeover(config.takeover_socket, ::getppid()));
  try {
    takeover->send(takeover_kind::hello, json{{"pid", ::getpid()}}.dump());
    adopt_state(takeover->expect(takeover_kind::state, upgrade_timeout()).payload);
    takeover->send(takeover_kind::loaded, {});
    adopt_listeners(takeover->expect(takeover_kind::listeners, upgrade_timeout()));
  } catch (const std::exception& e) {
    try {
      takeover->send(takeover_kind::failed, e.what());
    } catch (const takeover_error&) {
    }
    throw;
  }
}

void server::impl::adopt_state(const std::string& state) {
  const json j = json::parse(state, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw takeover_error("takeover: the running server's state is not JSON");
  carried.load(j.value("metrics", std::string()));
  std::vector<modules::module_event> events;
  for (const json& e : j.value("audit", json::array()))
    events.push_back({static_cast<modules::module_event_kind>(e.value("kind", 0)), e.value("principal", ""),
                      e.value("module", ""), e.value("file", ""), e.value("from_version", std::uint64_t{0}),
                      e.value("to_version", std::uint64_t{0}), e.value("from_build", ""), e.value("to_build", ""),
                      e.value("message", "")});
  audit->restore(std::move(events));
  // Serve what the running server serves now, not what its command line once
  // named, as a version numbered after the one serving there: the versions a
  // client sees (X-Hotswap-Version) never go back across an upgrade.
  for (const json& m : j.value("modules", json::array())) {
    const std::string name = m.value("name", ""), file = m.value("file", ""), sha = m.value("sha256", "");
    const std::uint64_t version = m.value("version", std::uint64_t{0});
    const auto known = registry->names();
    if (std::find(known.begin(), known.end(), name) == known.end())
      throw config_error("module '" + name + "' serves in the running server but no route here names it");
    auto sha_now = [&] {
      const std::uint64_t serving = registry->module(name).current_version();
      for (const auto& v : registry->status(name))
        if (v.number == serving) return v.id.sha256;
      return std::string();
    };
    auto& slot = registry->module(name);
    if (sha_now() == sha && slot.current_version() > version) continue;
    slot.continue_numbering_after(version);
    registry->swap("upgrade", name, file);  // every check and the preflight, as any swap
    if (sha_now() != sha)
      throw config_error("module '" + name + "': " + file + " no longer holds the bytes the running server serves (sha256 " +
                         sha + ")");
  }
  for (const json& r : j.value("routes", json::array())) {
    const std::string prefix = r.value("prefix", "");
    if (const auto p = parse_call_policy(r.value("policy", ""))) set_policy(*p, &prefix);
  }
}

void server::impl::adopt_listeners(takeover_message&& m) {
  const json j = json::parse(m.payload, nullptr, false);
  const std::size_t app = j.is_object() ? j.value("app", std::size_t{0}) : 0;
  const bool tcp_admin = j.is_object() && j.value("admin_tcp", false), unix_admin = j.is_object() && j.value("admin_unix", false);
  if (app == 0 || m.fds.size() != app + (tcp_admin ? 1 : 0) + (unix_admin ? 1 : 0)) {
    for (const int fd : m.fds) ::close(fd);
    throw takeover_error("takeover: the listeners message does not match its descriptors");
  }
  for (std::size_t k = 0; k < app; ++k) {  // every listener keeps being accepted on: its backlog is live
    worker& w = *workers[k % workers.size()];
    auto& l = *w.listeners.emplace_back(std::make_unique<listener>(w.io, exhaustion));
    l.acceptor.assign(protocol_of(m.fds[k]), m.fds[k]);
    bound_port = l.acceptor.local_endpoint().port();
  }
  const tcp::endpoint ep = workers.front()->listeners.front()->acceptor.local_endpoint();
  for (auto& w : workers)  // more workers than listeners: one more in the same SO_REUSEPORT group each
    if (w->listeners.empty()) bind_listener(*w, ep);
  if (admin) admin->adopt(tcp_admin ? m.fds[app] : -1, unix_admin ? m.fds[app + (tcp_admin ? 1 : 0)] : -1);
  else
    for (std::size_t k = app; k < m.fds.size(); ++k) ::close(m.fds[k]);
}

void server::impl::accepting() {
  takeover->send(takeover_kind::ready, {});
  upgrades.fetch_add(1, std::memory_order_relaxed);  // a statistic
  takeover_thread = std::thread([this] {
    hotswap::name_this_thread("httpd-takeover");
    const detail::connection_limits now = limits.load();
    const auto limit = upgrade_drain() + now.write_timeout + now.read_timeout + std::chrono::seconds(5);
    for (;;) {
      takeover_message m;
      try {
        m = takeover->receive(limit);
      } catch (const takeover_error& e) {
        std::fprintf(stderr, "hotswap-httpd: takeover: %s\n", e.what());
        break;
      }
      if (m.kind == takeover_kind::connection && m.fds.size() == 1) {
        adopt_connection(m.fds[0], std::move(m.payload));
        continue;
      }
      for (const int fd : m.fds) ::close(fd);
      if (m.kind == takeover_kind::done) {
        const json j = json::parse(m.payload, nullptr, false);
        const std::uint64_t closed = j.is_object() ? j.value("connections_closed_at_deadline", std::uint64_t{0}) : 0;
        if (j.is_object()) carried.load(j.value("metrics", std::string()));  // the old process's final counts
        closed_at_deadline.fetch_add(closed, std::memory_order_relaxed);  // a statistic
        audit->note("upgrade", "upgrade",
                    "took over from pid " + std::to_string(takeover->peer().pid) + ": " +
                        std::to_string(adopted.load(std::memory_order_relaxed)) + " connections handed over, " +  // a statistic
                        std::to_string(closed) + " answered there with Connection: close");
        std::fprintf(stderr, "hotswap-httpd: takeover done: %llu connections handed over, %llu closed at the drain deadline\n",
                     static_cast<unsigned long long>(adopted.load(std::memory_order_relaxed)),  // a statistic
                     static_cast<unsigned long long>(closed));
        break;
      }
    }
    takeover.reset();
  });
}

void server::impl::adopt_connection(int fd, std::string unparsed) {
  // Relaxed: a flag and counts; the worker's post orders the socket's hand-over.
  if (stopping.load(std::memory_order_relaxed)) {
    ::close(fd);
    return;
  }
  worker& w = *workers[next_adopter.fetch_add(1, std::memory_order_relaxed) % workers.size()];
  open_connections.fetch_add(1, std::memory_order_relaxed);
  adopted.fetch_add(1, std::memory_order_relaxed);
  net::post(w.io, [this, &w, fd, unparsed = std::move(unparsed)] {
    tcp::socket socket(w.io);
    boost::system::error_code ec;
    socket.assign(protocol_of(fd), fd, ec);
    if (ec) {
      ::close(fd);
      open_connections.fetch_sub(1, std::memory_order_relaxed);  // a count
      return;
    }
    serve(w, std::move(socket), accepted.fetch_add(1, std::memory_order_relaxed), unparsed);  // a number; no partner
  });
}

void report_takeover_failure(const std::filesystem::path& socket, const std::string& why) noexcept {
  try {
    takeover_channel c(connect_takeover(socket, ::getppid()));
    c.send(takeover_kind::failed, why);
  } catch (const std::exception&) {  // best effort: the exit status still tells
  }
}

}  // namespace hotswap::http
