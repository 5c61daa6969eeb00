// The `upgrade` end-to-end scenario (issue 21): the server binary itself is
// replaced under load, every 500 ms, and our exact-counting client
// (probe_client: every failure counted by kind, never retried) says how many
// requests each design loses. Three cases, the same client and schedule:
//
//   hotswap  hotswap-httpd, POST /admin/upgrade alternating two builds
//            (hotswap-httpd and hotswap-httpd-alt): listeners and idle
//            keep-alive connections taken over. Target: 0 errors, 0 non-2xx,
//            and the server's carried request count equals the client's.
//   nginx    nginx's binary upgrade: USR2 (a new master from the same binary),
//            WINCH (the old workers stop gracefully), QUIT (the old master).
//   haproxy  HAProxy's hitless reload: `haproxy -W` with `expose-fd listeners`
//            on its master's stats socket, SIGUSR2 to the master.
//
// Load: 16 keep-alive and 4 new-connection client threads (GET /). A case
// runs until `requests` (default: 1,000,000; --quick 20,000) are answered or
// failed and `min_upgrades` (quick: 4) upgrades are done, capped at
// max(60 s, 4 x --seconds) (a budget not reached is a violation for hotswap).
// Settings (--scenario-arg): requests=N, min_upgrades=N, upgrade_ms=N (500),
// keepalive_clients=N (16), new_clients=N (4), peers=0 (ours only).
// Lost requests (errors + non-2xx) are a violation for hotswap only; for the
// peers they are the measurement (lost_per_upgrade). A peer whose binary is
// missing is skipped with the reason.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <hotswap/http/probe_client.hpp>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "host_scenario.hpp"

#ifndef HOTSWAP_HTTPD
#define HOTSWAP_HTTPD "hotswap-httpd"
#endif
#ifndef HOTSWAP_HTTPD_ALT
#define HOTSWAP_HTTPD_ALT "hotswap-httpd-alt"
#endif
#ifndef HOTSWAP_HTTP_APP_DIR
#define HOTSWAP_HTTP_APP_DIR "."
#endif

namespace hotswap::stress {

namespace {

namespace fs = std::filesystem;
namespace h = hotswap::http;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

// A loopback port nobody listens on now.
std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// fork + exec with stdout and stderr appended to `log`; no other descriptor inherited.
pid_t launch(const std::vector<std::string>& args, const fs::path& log) {
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out, STDOUT_FILENO);
    ::dup2(out, STDERR_FILENO);
    ::close_range(3, ~0u, 0);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out);
  return pid;
}

// Reaps whatever of ours has exited (we are the subreaper of the servers' successors).
void reap_all() {
  while (::waitpid(-1, nullptr, WNOHANG) > 0) {
  }
}

bool wait_for(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  const auto until = clock_type::now() + limit;
  while (!done()) {
    if (clock_type::now() > until) return false;
    reap_all();
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

pid_t read_pid(const fs::path& file) {
  std::ifstream in(file);
  pid_t pid = 0;
  in >> pid;
  return pid;
}

bool answers(std::uint16_t port) {
  h::probe_client c(port, 1s);
  h::probe_reply r;
  return c.exchange(h::probe_client::get("/"), r) == h::probe_error::none && r.status == 200;
}

// One server design under test: start it, upgrade it, stop it.
class subject {
 public:
  virtual ~subject() = default;
  virtual std::uint16_t port() const = 0;
  /// One upgrade; false (with `why`) when it failed.
  virtual bool upgrade(std::string& why) = 0;
  virtual void stop() = 0;
  /// After stop(): what the server itself counted, if it can say (-1: unknown).
  virtual double server_requests() { return -1; }
  std::uint64_t handed_over = 0;
};

class hotswap_subject final : public subject {
 public:
  explicit hotswap_subject(const fs::path& dir) : dir_(dir), port_(free_port()) {
    fs::create_directories(dir / "plugins");
    fs::permissions(dir / "plugins", fs::perms::owner_all);
    fs::copy_file(fs::path(HOTSWAP_HTTP_APP_DIR) / "greeting-1.so", dir / "plugins" / "greeting-1.so");
    fs::permissions(dir / "plugins" / "greeting-1.so", fs::perms::owner_read | fs::perms::owner_write);
    std::random_device rd;
    token_ = "upgrade-stress-" + std::to_string(rd()) + "-" + std::to_string(rd());
    std::ofstream(dir / "admin.token") << token_ << "\n";
    fs::permissions(dir / "admin.token", fs::perms::owner_read | fs::perms::owner_write);
    admin_port_ = free_port();
    const auto quoted = [](const fs::path& p) { return "\"" + p.string() + "\""; };
    std::ofstream(dir / "httpd.toml") << "[server]\naddress = \"127.0.0.1\"\nport = " << port_
                                      << "\nthreads = 2\nplugin_dir = " << quoted(dir / "plugins")
                                      << "\nshadow_dir = " << quoted(dir / "shadow") << "\n\n[timeouts]\nupgrade_drain_ms = 5000\n"
                                      << "\n[admin]\naddress = \"127.0.0.1\"\nport = " << admin_port_
                                      << "\ntoken_file = " << quoted(dir / "admin.token")
                                      << "\n\n[[routes]]\nprefix = \"/\"\nmodule = \"greeting\"\nfile = \"greeting-1.so\"\n";
    pid_ = launch({HOTSWAP_HTTPD, "--config", (dir / "httpd.toml").string()}, dir / "hotswap.log");
    if (!wait_for([&] { return answers(port_); }, 30s)) throw std::runtime_error("hotswap-httpd did not start; see " + (dir / "hotswap.log").string());
  }
  std::uint16_t port() const override { return port_; }
  bool upgrade(std::string& why) override {
    const char* binary = (count_++ % 2 == 0) ? HOTSWAP_HTTPD_ALT : HOTSWAP_HTTPD;
    const std::string body = std::string("{\"binary\":\"") + binary + "\"}";
    h::probe_reply r;
    h::probe_client c(admin_port_, 60s);
    const auto e = c.exchange(h::probe_client::post("/admin/upgrade", body, auth()), r);
    reap_all();
    if (e != h::probe_error::none || r.status != 200) {
      why = "upgrade answered " + std::to_string(r.status) + " (" + h::to_string(e) + "): " + r.body;
      return false;
    }
    const auto at = r.body.find("\"connections_handed_over\":");
    if (at != std::string::npos) handed_over += std::stoull(r.body.substr(at + 26));
    const auto pid = r.body.find("\"pid\":");
    if (pid != std::string::npos) pid_ = std::stoi(r.body.substr(pid + 6));  // the server from now on
    return true;
  }
  void stop() override {
    requests_ = scrape_requests();
    ::kill(pid_, SIGTERM);
    wait_for([&] { return ::waitpid(pid_, nullptr, WNOHANG) == pid_ || ::kill(pid_, 0) != 0; }, 40s);
    reap_all();
  }
  /// Less the one request that saw the server up.
  double server_requests() override { return requests_ < 0 ? requests_ : requests_ - 1; }

 private:
  std::string auth() const { return "Authorization: Bearer " + token_ + "\r\n"; }
  double scrape_requests() {
    h::probe_reply r;
    h::probe_client c(admin_port_, 5s);
    if (c.exchange(h::probe_client::get("/metrics", auth()), r) != h::probe_error::none) return -1;
    double sum = 0;
    std::istringstream in(r.body);
    for (std::string line; std::getline(in, line);)
      if (line.starts_with("hotswap_http_requests_total{")) sum += std::stod(line.substr(line.rfind(' ') + 1));
    return sum;
  }

  fs::path dir_;
  std::uint16_t port_, admin_port_ = 0;
  std::string token_;
  std::uint64_t count_ = 0;
  double requests_ = -1;
  pid_t pid_ = -1;  // the serving process: the one we started, then each upgrade's successor
};

class nginx_subject final : public subject {
 public:
  explicit nginx_subject(const fs::path& dir) : dir_(dir), port_(free_port()) {
    fs::create_directories(dir / "logs");
    std::ofstream(dir / "nginx.conf") << "worker_processes 2;\npid " << (dir / "nginx.pid").string()
                                      << ";\nerror_log " << (dir / "logs/error.log").string()
                                      << " warn;\nevents { worker_connections 4096; }\nhttp {\n  access_log off;\n"
                                         "  keepalive_requests 1000000;\n  keepalive_timeout 60s;\n"
                                      << "  client_body_temp_path " << (dir / "tmp-body").string() << ";\n  proxy_temp_path "
                                      << (dir / "tmp-proxy").string() << ";\n  fastcgi_temp_path " << (dir / "tmp-fastcgi").string()
                                      << ";\n  uwsgi_temp_path " << (dir / "tmp-uwsgi").string() << ";\n  scgi_temp_path "
                                      << (dir / "tmp-scgi").string() << ";\n  server {\n"
                                         "    listen 127.0.0.1:" << port_ << ";\n"
                                      << "    location / { default_type text/plain; return 200 \"hello from greeting-1\\n\"; }\n"
                                         "  }\n}\n";
    launch({"/usr/sbin/nginx", "-p", dir.string(), "-c", (dir / "nginx.conf").string()}, dir / "nginx.log");
    if (!wait_for([&] { return read_pid(dir_ / "nginx.pid") > 0 && answers(port_); }, 30s))
      throw std::runtime_error("nginx did not start; see " + (dir / "logs/error.log").string());
  }
  std::uint16_t port() const override { return port_; }
  bool upgrade(std::string& why) override {
    const pid_t old = read_pid(dir_ / "nginx.pid");
    ::kill(old, SIGUSR2);  // a new master from the binary, beside the old one
    if (!wait_for([&] { const pid_t p = read_pid(dir_ / "nginx.pid"); return p > 0 && p != old; }, 10s)) {
      why = "nginx: no new master after USR2";
      return false;
    }
    std::this_thread::sleep_for(50ms);  // the new master's workers start
    ::kill(old, SIGWINCH);  // the old workers stop gracefully
    ::kill(old, SIGQUIT);   // and the old master
    wait_for([&] { return ::kill(old, 0) != 0; }, 10s);
    return true;
  }
  void stop() override {
    ::kill(read_pid(dir_ / "nginx.pid"), SIGQUIT);
    wait_for([&] { return !answers(port_); }, 30s);
    reap_all();
  }

 private:
  fs::path dir_;
  std::uint16_t port_;
};

class haproxy_subject final : public subject {
 public:
  explicit haproxy_subject(const fs::path& dir) : dir_(dir), port_(free_port()) {
    std::ofstream(dir / "haproxy.cfg") << "global\n  master-worker\n  nbthread 2\n  stats socket "
                                       << (dir / "stats.sock").string()
                                       << " mode 600 level admin expose-fd listeners\n"
                                          "defaults\n  mode http\n  timeout client 60s\n  timeout connect 5s\n"
                                          "  timeout server 60s\n  timeout http-keep-alive 60s\n"
                                          "frontend web\n  bind 127.0.0.1:" << port_ << "\n"
                                       << "  http-request return status 200 content-type text/plain string \"hello from greeting-1\"\n";
    master_ = launch({"/usr/sbin/haproxy", "-W", "-f", (dir / "haproxy.cfg").string(), "-p", (dir / "haproxy.pid").string()},
                     dir / "haproxy.log");
    if (!wait_for([&] { return answers(port_); }, 30s)) throw std::runtime_error("haproxy did not start; see " + (dir / "haproxy.log").string());
  }
  std::uint16_t port() const override { return port_; }
  bool upgrade(std::string&) override {
    ::kill(master_, SIGUSR2);  // the master re-executes; new workers get the listeners over the stats socket
    std::this_thread::sleep_for(50ms);
    reap_all();
    return true;
  }
  void stop() override {
    ::kill(master_, SIGTERM);
    wait_for([&] { return ::waitpid(master_, nullptr, WNOHANG) == master_ || ::kill(master_, 0) != 0; }, 30s);
    reap_all();
  }

 private:
  fs::path dir_;
  std::uint16_t port_;
  pid_t master_;
};

struct counts {
  std::atomic<std::uint64_t> ok{0}, non_2xx{0};
  std::atomic<std::uint64_t> errors[5] = {};
  std::uint64_t lost() const {
    std::uint64_t t = non_2xx.load();
    for (int k = 1; k < 5; ++k) t += errors[k].load();
    return t;
  }
  std::uint64_t total() const { return ok.load() + lost(); }
};

host_case run_case(const host_config& cfg, const std::string& name, subject& s) {
  const std::uint64_t budget = std::stoull(cfg.args.get("requests", cfg.quick ? "20000" : "1000000"));
  const std::uint64_t min_upgrades = std::stoull(cfg.args.get("min_upgrades", cfg.quick ? "4" : "1"));
  const auto upgrade_every = std::chrono::milliseconds(std::stol(cfg.args.get("upgrade_ms", "500")));
  const std::size_t keepalive_clients = std::stoul(cfg.args.get("keepalive_clients", "16"));
  const std::size_t new_clients = std::stoul(cfg.args.get("new_clients", "4"));
  const auto cap = std::chrono::duration<double>(std::max(60.0, cfg.seconds * 4));

  counts c;
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < keepalive_clients + new_clients; ++i)
    threads.emplace_back([&, keepalive = i < keepalive_clients] {
      h::probe_client client(s.port(), 5s);
      const std::string req = h::probe_client::get("/", keepalive ? "" : "Connection: close\r\n");
      // Relaxed: a stop flag and counters read after the joins.
      while (!stop.load(std::memory_order_relaxed)) {
        h::probe_reply reply;
        const h::probe_error e = client.exchange(req, reply);
        if (e != h::probe_error::none) {
          c.errors[static_cast<int>(e)].fetch_add(1, std::memory_order_relaxed);
          client.close();
          continue;
        }
        (reply.status >= 200 && reply.status < 300 ? c.ok : c.non_2xx).fetch_add(1, std::memory_order_relaxed);
        if (!keepalive || reply.header("connection") == "close") client.close();
      }
    });
  const auto started = clock_type::now();
  std::uint64_t upgrades = 0;
  std::vector<std::string> failures;
  auto next = started + upgrade_every;
  while (clock_type::now() - started < cap && (c.total() < budget || upgrades < min_upgrades)) {
    std::this_thread::sleep_until(next);
    next += upgrade_every;
    std::string why;
    if (s.upgrade(why)) ++upgrades;
    else if (failures.size() < 10) failures.push_back(why);
    if (clock_type::now() > next) next = clock_type::now();  // an upgrade longer than the period: no burst after it
  }
  stop.store(true, std::memory_order_relaxed);
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(clock_type::now() - started).count();
  s.stop();

  host_case out;
  out.name = name;
  auto& m = out.metrics;
  m.emplace_back("requests", static_cast<double>(c.total()));
  m.emplace_back("upgrades", static_cast<double>(upgrades));
  m.emplace_back("non_2xx", static_cast<double>(c.non_2xx.load()));
  for (int k = 1; k < 5; ++k)
    m.emplace_back(std::string("errors_") + h::to_string(static_cast<h::probe_error>(k)), static_cast<double>(c.errors[k].load()));
  m.emplace_back("connections_handed_over", static_cast<double>(s.handed_over));
  m.emplace_back("lost", static_cast<double>(c.lost()));
  m.emplace_back("lost_per_upgrade", upgrades ? static_cast<double>(c.lost()) / static_cast<double>(upgrades) : 0);
  m.emplace_back("rps", static_cast<double>(c.total()) / seconds);
  m.emplace_back("seconds", seconds);
  for (const auto& f : failures) out.violations.push_back(f);
  if (name == "hotswap") {  // our targets; the peers are measured, not judged
    if (c.lost() != 0) out.violations.push_back(std::to_string(c.lost()) + " requests lost (errors + non-2xx)");
    const double server = s.server_requests();
    if (server >= 0 && server != static_cast<double>(c.ok.load()))
      out.violations.push_back("the server counted " + std::to_string(static_cast<std::uint64_t>(server)) +
                               " responses over all its processes, the clients " + std::to_string(c.ok.load()));
    if (c.total() < budget) out.violations.push_back("only " + std::to_string(c.total()) + " requests within the time cap");
    if (upgrades < min_upgrades) out.violations.push_back("only " + std::to_string(upgrades) + " upgrades");
  }
  return out;
}

}  // namespace

std::vector<host_case> run_upgrade_scenario(const host_config& cfg) {
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);  // successors of the servers we start are reparented to us
  std::random_device rd;
  const fs::path root = fs::temp_directory_path() / ("hotswap-stress-upgrade-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
  fs::create_directories(root);
  fs::permissions(root, fs::perms::owner_all);
  std::vector<host_case> out;
  auto one = [&](const std::string& name, const char* binary, auto make) {
    if (binary != nullptr && ::access(binary, X_OK) != 0) {
      host_case skipped;
      skipped.name = name;
      skipped.skip_reason = std::string(binary) + " is not installed (scripts/setup.sh installs it)";
      out.push_back(std::move(skipped));
      return;
    }
    try {
      fs::create_directories(root / name);
      auto s = make(root / name);
      out.push_back(run_case(cfg, name, *s));
    } catch (const std::exception& e) {
      host_case failed;
      failed.name = name;
      failed.violations.push_back(std::string("could not run: ") + e.what());
      out.push_back(std::move(failed));
    }
  };
  one("hotswap", nullptr, [](const fs::path& d) { return std::make_unique<hotswap_subject>(d); });
  if (cfg.args.get("peers", "1") != "0") {
    one("nginx", "/usr/sbin/nginx", [](const fs::path& d) { return std::make_unique<nginx_subject>(d); });
    one("haproxy", "/usr/sbin/haproxy", [](const fs::path& d) { return std::make_unique<haproxy_subject>(d); });
  }
  reap_all();
  std::error_code ignored;
  fs::remove_all(root, ignored);
  return out;
}

}  // namespace hotswap::stress
