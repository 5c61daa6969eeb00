#include <sys/socket.h>

#include <cstdio>
#include <hotswap/thread_name.hpp>
#include <hotswap/module/path_policy.hpp>
#include <hotswap/watch/xxh64.hpp>
#include <hotswap/http/admin_request.hpp>

#include "admin_service.hpp"
#include "server_impl.hpp"
#include "upgrade.hpp"

namespace hotswap::http {

namespace detail {

// A shadow run's comparison: the serving version's answer and the canary's
// (run with HOTSWAP_HTTP_SHADOW), compared when both are in. Both finish on
// the connection's worker thread, so no lock.
struct shadow_compare {
  struct digest {
    unsigned status;
    std::uint64_t body;
    std::string content_type;
  };
  modules::canary& canary;
  std::string what;  // method and target, for a kept example
  std::optional<digest> stable, shadow;

  void deposit(modules::side on, const response& res) {
    (on == modules::side::stable ? stable : shadow) =
        digest{res.result_int(), watch::xxh64::of(res.body()), std::string(res[bhttp::field::content_type])};
    if (!stable || !shadow) return;
    std::string diff;
    if (stable->status != shadow->status)
      diff = "status " + std::to_string(stable->status) + " vs " + std::to_string(shadow->status);
    else if (stable->body != shadow->body) diff = "body differs";
    else if (stable->content_type != shadow->content_type)
      diff = "Content-Type " + stable->content_type + " vs " + shadow->content_type;
    canary.report_shadow(diff.empty(), diff.empty() ? std::string() : what + ": " + diff);
  }
};

namespace {

// One request in the hands of an application version: the request (owned:
// the C view points into it, and a fallback runs it again), the response under
// construction and what finishing it needs. Owned by whoever finishes it: the
// worker for a synchronous answer, else the app until complete() posts it back.
struct exchange {
  std::shared_ptr<app_service::connection_type> connection;
  app_service& service;
  std::shared_ptr<route_entry> route;  // kept: a saved settings file may drop it from the table meanwhile
  version_info version;
  modules::side on;          // the canary side that runs it (stable without a canary)
  std::string fallback_of;   // set: this re-runs on stable the request that failed on that canary version
  std::shared_ptr<shadow_compare> shadow;  // set: a shadow run pairs with this one (candidate side: this is it)
  request req;
  std::chrono::steady_clock::time_point started;
  response res;
  bool bad = false;  // the app broke the ABI's rules: answer 500
  net::executor_work_guard<net::any_io_executor> keep_loop;  // a pending request keeps its worker running
  hotswap_http_response c_api{};

  exchange(std::shared_ptr<app_service::connection_type> c, app_service& s, std::shared_ptr<route_entry> r, version_info v,
           modules::side side, std::string fallback, request&& rq)
      : connection(std::move(c)),
        service(s),
        route(std::move(r)),
        version(std::move(v)),
        on(side),
        fallback_of(std::move(fallback)),
        req(std::move(rq)),
        started(std::chrono::steady_clock::now()),
        res(bhttp::status::ok, 11),
        keep_loop(connection->stream().get_executor()) {
    res.result(0u);  // unset until the app sets it
    c_api = {this, &set_status, &add_header, &append_body, &complete};
    if (on == modules::side::candidate) version.number |= canary_version_bit;
  }

  void finish() {
    if (bad || res.result_int() == 0) {
      if (shadow && on == modules::side::candidate) res.result(500u);  // compared as what a user would get
    }
    if (shadow) shadow->deposit(on, res);
    if (shadow && on == modules::side::candidate) return;  // a shadow answer is thrown away, never sent
    const auto took = std::chrono::steady_clock::now() - started;
    const bool failed = bad || res.result_int() == 0 || res.result_int() >= 500;
    const route_entry& r = *route;
    r.canary->report(on, failed ? modules::outcome::error : modules::outcome::ok, took);
    if (failed && on == modules::side::candidate && r.retries(req.method())) {
      // Once, on stable: its answer is final whatever it is, and a non-retryable request never gets here.
      r.canary->report_fallback();
      return service.run(connection, route, std::move(req), r.ref.pin(), modules::side::stable,
                         version_text(version.number));
    }
    if (bad || res.result_int() == 0) {
      res = host_response(bhttp::status::internal_server_error, "the application gave no valid response");
    }
    res.set(version_header, version_text(version.number));
    res.set(build_header, version.label);
    if (!fallback_of.empty()) res.set(fallback_header, fallback_of);
    service.record(*route, version, res.result_int(), took);
    connection->send(std::move(res));
  }

  static exchange& of(void* context) { return *static_cast<exchange*>(context); }
  static bool clean(std::string_view s) {
    for (const char c : s)
      if (c == '\r' || c == '\n' || c == '\0') return false;
    return true;
  }

  static void set_status(void* context, int status) {
    exchange& e = of(context);
    if (status < 100 || status > 599) e.bad = true;
    else e.res.result(static_cast<unsigned>(status));
  }
  static void add_header(void* context, const char* name, std::size_t name_size, const char* value,
                         std::size_t value_size) {
    exchange& e = of(context);
    const std::string_view n(name, name_size), v(value, value_size);
    if (n.empty() || !clean(n) || !clean(v) || n.find(':') != std::string_view::npos) {
      e.bad = true;  // header injection
      return;
    }
    // Framing and the version stamp are the host's.
    const auto f = bhttp::string_to_field(n);
    if (f == bhttp::field::content_length || f == bhttp::field::transfer_encoding || f == bhttp::field::connection ||
        beast::iequals(n, version_header) || beast::iequals(n, build_header))
      return;
    e.res.insert(n, v);
  }
  static void append_body(void* context, const char* data, std::size_t size) {
    of(context).res.body().append(data, size);
  }
  static void complete(void* context) {
    exchange* e = &of(context);
    net::post(e->connection->stream().get_executor(), [e] { std::unique_ptr<exchange>(e)->finish(); });
  }
};

}  // namespace

std::shared_ptr<route_entry> app_service::match(std::string_view target) const {
  return routes_.call([&](const route_table& table) -> std::shared_ptr<route_entry> {
    for (const auto& r : table)  // longest prefix first
      if (r->matches(target)) return r;
    return nullptr;
  });
}

void app_service::on_request(std::shared_ptr<connection_type> c, request&& req) {
  std::shared_ptr<route_entry> r = match(req.target());
  if (r == nullptr) {
    on_refused(404);
    return c->send(host_response(bhttp::status::not_found, "no route for this path"));
  }
  // Relaxed: a flag read per request; the registry/slot orders the module itself.
  const call_policy policy = r->policy.load(std::memory_order_relaxed);
  auto& st = c->state();
  if (st.pins.size() <= r->index) {
    st.pins.resize(r->index + 1);
    st.sides.resize(r->index + 1, modules::side::stable);
  }
  // The connection is the canary's key: all its requests fall on one side (for a
  // pinned connection, one version) while a canary's weight grows.
  const std::uint64_t key = st.key;
  app_pin fresh;
  const app_pin* use = nullptr;
  modules::side on = modules::side::stable;
  if (policy == call_policy::pinned) {
    if (!st.pins[r->index]) {  // the connection's version from now on
      auto chosen = r->canary->pin(key);
      st.pins[r->index] = app_pin(std::move(chosen.pin));
      st.sides[r->index] = chosen.on;
    }
    use = &st.pins[r->index];
    on = st.sides[r->index];
  } else {
    st.pins[r->index].reset();  // switched back to per-call: let the pinned version drain
    auto chosen = r->canary->pin(key);
    fresh = app_pin(std::move(chosen.pin));
    use = &fresh;
    on = chosen.on;
  }
  // In a canary's shadow phase, a sample of requests (by connection and request) also runs on it.
  std::shared_ptr<shadow_compare> compare;
  if (auto shadow = r->canary->shadow_for(key ^ (++shadow_sequence_ * 0x9e3779b97f4a7c15ULL))) {
    compare = std::make_shared<shadow_compare>(
        shadow_compare{*r->canary, std::string(req.method_string()) + " " + std::string(req.target()), {}, {}});
    run(c, r, request(req), app_pin(std::move(shadow)), modules::side::candidate, {}, compare);
  }
  run(std::move(c), std::move(r), std::move(req), *use, on, {}, std::move(compare));
}

void app_service::run(std::shared_ptr<connection_type> c, std::shared_ptr<route_entry> route, request&& req,
                      const app_pin& use, modules::side on, std::string fallback_of,
                      std::shared_ptr<shadow_compare> shadow) {
  auto* e = new exchange(std::move(c), *this, std::move(route), use.version(), on, std::move(fallback_of), std::move(req));
  e->shadow = std::move(shadow);
  // The C view of the request: valid during handle() only.
  thread_local std::vector<hotswap_http_header> headers;
  headers.clear();
  for (const auto& f : e->req)
    headers.push_back({f.name_string().data(), f.name_string().size(), f.value().data(), f.value().size()});
  const std::string_view method = e->req.method_string();
  const std::string_view target = e->req.target();
  const hotswap_http_request creq{method.data(), method.size(), target.data(), target.size(), headers.data(),
                                  headers.size(), e->req.body().data(), e->req.body().size(),
                                  e->shadow && on == modules::side::candidate ? HOTSWAP_HTTP_SHADOW : 0u};
  const int rc = use->handle(use.state(), &creq, &e->c_api);
  if (rc == HOTSWAP_HTTP_PENDING) return;  // *e belongs to the app until complete()
  std::unique_ptr<exchange> owned(e);
  if (rc != HOTSWAP_HTTP_DONE) owned->bad = true;
  owned->finish();
}

void app_service::pass_on(state&, int fd, std::string unparsed) { handoff_.pass(fd, std::move(unparsed)); }

void app_service::on_refused(unsigned status) {
  std::lock_guard lock(stats_.mutex);
  ++stats_.refused[status];
}

void app_service::record(const route_entry& route, const version_info& v, unsigned status,
                         std::chrono::steady_clock::duration d) {
  const double seconds = std::chrono::duration<double>(d).count();
  std::size_t bucket = 0;
  while (bucket < latency_bounds.size() && seconds > latency_bounds[bucket]) ++bucket;
  std::lock_guard lock(stats_.mutex);
  version_count& vc = stats_.versions[{route.index, v.number}];
  if (vc.build.empty()) vc.build = v.label;
  ++vc.by_class[status >= 100 && status < 600 ? status / 100 : 0];
  ++stats_.latency[bucket];
  stats_.latency_sum += seconds;
}

std::string escape_text(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else out += ch;
  }
  return out;
}

void audit_log::add(const modules::module_event& e) {
  std::fprintf(stderr, "audit: %s principal=\"%s\" module=\"%s\" file=\"%s\" from=%llu to=%llu: %s\n",
               to_string(e.kind), escape_text(e.principal).c_str(), escape_text(e.module).c_str(),
               escape_text(e.file).c_str(), static_cast<unsigned long long>(e.from_version),
               static_cast<unsigned long long>(e.to_version), escape_text(e.message).c_str());
  std::lock_guard lock(mutex_);
  events_.push_back(e);
  while (events_.size() > keep_) events_.pop_front();
}

void audit_log::note(const std::string& principal, const std::string& what, const std::string& message) {
  modules::module_event e{modules::module_event_kind::plugin_log, principal, "", "", 0, 0, "", "", message};
  std::fprintf(stderr, "audit: %s principal=\"%s\": %s\n", what.c_str(), escape_text(principal).c_str(),
               escape_text(message).c_str());
  e.module = "(" + what + ")";  // shown in /admin/status beside the module events
  std::lock_guard lock(mutex_);
  events_.push_back(std::move(e));
  while (events_.size() > keep_) events_.pop_front();
}

void audit_log::restore(std::vector<modules::module_event> events) {
  std::lock_guard lock(mutex_);
  events_.insert(events_.begin(), std::make_move_iterator(events.begin()), std::make_move_iterator(events.end()));
  while (events_.size() > keep_) events_.pop_front();
}

std::vector<modules::module_event> audit_log::recent() const {
  std::lock_guard lock(mutex_);
  return {events_.begin(), events_.end()};
}

}  // namespace detail

using namespace detail;

server::impl::impl(server_config c) : config(std::move(c)), audit(std::make_shared<audit_log>(config.audit_events)) {
  if (config.plugin_dir.empty()) throw config_error("server.plugin_dir: required (the only directory modules load from)");
  if (config.routes.empty()) throw config_error("routes: at least one is required");
  config.plugin_dir = std::filesystem::absolute(config.plugin_dir);
  modules::registry_options ro;
  ro.loader.policy.allowed_dir = config.plugin_dir;
  ro.loader.shadow.dir = config.shadow_dir;
  // The shadow copy is private and re-made after a crash: flushing it to disk
  // protects nothing, and on a disk-backed directory it was the costliest stage
  // of a swap left once the preflight is remembered (CPU and wall alike).
  ro.loader.shadow.fsync = false;
  canaries->server = this;
  ro.loader.log = [a = audit, c = canaries](const modules::module_event& e) {
    a->add(e);
    // Every start, the admin request's or a host's through modules(), logs one.
    if (e.kind != modules::module_event_kind::canary) return;
    std::lock_guard lock(c->mutex);
    if (c->server != nullptr) c->server->canary_started();
  };
  registry.emplace(domain, std::move(ro));

  // Modules in the order the routes name them: the first that fails throws.
  {
    std::lock_guard lock(routes_mutex);
    route_table table = make_routes(config.routes, config.policy, config.policy, nullptr);
    if (!routes.publish(std::move(table), "start")) throw std::logic_error("hotswap-httpd: the first route table was refused");
    applied = config;
  }
  limits.store({config.max_header_bytes, config.max_body_bytes, config.idle_timeout, config.read_timeout,
                config.write_timeout});
  shutdown_ms.store(config.shutdown_timeout.count(), std::memory_order_relaxed);
  canary_tick_ms.store(config.canary_tick.count(), std::memory_order_relaxed);
  upgrade_drain_ms.store(config.upgrade_drain.count(), std::memory_order_relaxed);
  upgrade_timeout_ms.store(config.upgrade_timeout.count(), std::memory_order_relaxed);
  if (!admin_access.publish(admin_rules{config.admin_principal, config.admin_uids}, "start"))
    throw std::logic_error("hotswap-httpd: the first admin rules were refused");
  const unsigned n = config.threads != 0 ? config.threads : std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < n; ++i) {
    workers.push_back(std::make_unique<worker>(routes, handoff));
    // Taking over: the listeners come from the process we replace, in start().
    if (config.takeover_socket.empty())
      bind_listener(*workers.back(), tcp::endpoint(net::ip::make_address(config.address), bound_port != 0 ? bound_port : config.port));
  }
  if (config.admin_enabled || !config.admin_socket.empty()) admin = std::make_unique<admin_service>(*this, control);
  if (!config.watch_dir.empty()) {
    const auto dir = std::filesystem::weakly_canonical(std::filesystem::absolute(config.watch_dir));
    const auto allowed = std::filesystem::weakly_canonical(config.plugin_dir);
    if (dir != allowed && !hotswap::modules::path_within(dir, allowed))
      throw config_error("server.watch " + config.watch_dir.string() + ": must be inside server.plugin_dir " + allowed.string());
    watch = std::make_unique<hotswap::watch::watcher>(dir, watch::watch_options{.filter = watch::name_ends_with(".so")},
                                              [this](const watch::file_change& c) { on_watched_change(c); });
  }
  // Last: counts the descriptors everything above holds.
  connection_fit = connection_cap(descriptor_limit);
  set_max_connections(config.max_connections);
}

void server::impl::set_max_connections(std::size_t wanted) {
  const std::size_t n = wanted != 0 ? wanted : connection_fit;
  max_connections.store(n, std::memory_order_relaxed);  // a number compared per accept; no partner
  if (n > connection_fit)  // as nginx warns of worker_connections over the limit
    std::fprintf(stderr,
                 "hotswap-httpd: limits.max_connections %zu exceeds what the descriptor limit (%zu) leaves (%zu); "
                 "connections over it are answered 503 when descriptors run out\n",
                 n, descriptor_limit, connection_fit);
}

route_table server::impl::make_routes(const std::vector<route_config>& wanted, call_policy old_default,
                                      call_policy new_default, std::vector<std::string>* refused) {
  const route_table serving = *routes.read();
  route_table out;
  for (const route_config& r : wanted) {
    const auto known = registry->names();
    const bool loaded = std::find(known.begin(), known.end(), r.module) != known.end();
    const auto old = std::find_if(serving.begin(), serving.end(), [&](const auto& e) { return e->prefix == r.prefix; });
    const auto keep_old = [&](std::string why) {
      if (refused == nullptr) throw config_error("route " + r.prefix + ": " + why);
      refused->push_back("route " + r.prefix + ": " + std::move(why));
      if (old != serving.end()) out.push_back(*old);
    };
    if (!loaded) {
      if (r.file.empty()) {
        keep_old("module '" + r.module + "' is not loaded by an earlier route; give its file");
        continue;
      }
      const auto file = resolve_plugin_file(config.plugin_dir, r.file);
      if (const auto* refusal = std::get_if<admin_refusal>(&file)) {
        keep_old(refusal->message);
        continue;
      }
      try {
        registry->add<hotswap_http_app>(refused == nullptr ? "startup" : "settings", r.module,
                                        std::get<std::filesystem::path>(file));
      } catch (const std::exception& e) {
        if (refused == nullptr) throw;  // at start: the registry's own error (module_error)
        keep_old(e.what());
        continue;
      }
    }
    const call_policy policy = r.policy.value_or(new_default);
    if (old != serving.end() && (*old)->module == r.module) {
      // Same route: keeps its entry, and a policy set through the admin API
      // until the file changes this route's policy.
      const auto before = std::find_if(applied.routes.begin(), applied.routes.end(),
                                       [&](const route_config& a) { return a.prefix == r.prefix; });
      const call_policy was = before != applied.routes.end() ? before->policy.value_or(old_default) : policy;
      if (was != policy) (*old)->policy.store(policy, std::memory_order_relaxed);  // a flag; no partner
      out.push_back(*old);
      continue;
    }
    auto entry = std::make_shared<route_entry>(r.prefix, r.module, every_route.size(),
                                               registry->get<hotswap_http_app>(r.module), registry->canary(r.module),
                                               policy);
    every_route.push_back(entry);
    out.push_back(std::move(entry));
  }
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a->prefix.size() > b->prefix.size(); });
  return out;
}

std::shared_ptr<route_entry> server::impl::route_by_index(std::size_t index) const {
  std::lock_guard lock(routes_mutex);
  return every_route.at(index);
}

server::apply_report server::impl::apply(const server_config& next) {
  apply_report report;
  std::lock_guard lock(routes_mutex);
  report.restart_needed = restart_needed(config, next);
  route_table table = make_routes(next.routes, applied.policy, next.policy, &report.refused);
  // Waits (bounded) for room: old tables drain as soon as the requests that read them have matched.
  if (!routes.publish_until(std::move(table), std::chrono::steady_clock::now() + std::chrono::seconds(1), "settings"))
    report.refused.push_back("routes: the route table is still draining; the routes serving keep serving");
  limits.store({next.max_header_bytes, next.max_body_bytes, next.idle_timeout, next.read_timeout, next.write_timeout});
  set_max_connections(next.max_connections);
  shutdown_ms.store(next.shutdown_timeout.count(), std::memory_order_relaxed);      // a number; no partner
  canary_tick_ms.store(next.canary_tick.count(), std::memory_order_relaxed);        // a number; no partner
  upgrade_drain_ms.store(next.upgrade_drain.count(), std::memory_order_relaxed);    // a number; no partner
  upgrade_timeout_ms.store(next.upgrade_timeout.count(), std::memory_order_relaxed);  // a number; no partner
  if (!admin_access.publish_until(admin_rules{next.admin_principal, next.admin_uids},
                                  std::chrono::steady_clock::now() + std::chrono::seconds(1), "settings"))
    report.refused.push_back("admin: the admin rules are still draining; the rules serving keep serving");
  applied = next;
  pending_restart = report.restart_needed;
  return report;
}

server::impl::~impl() {
  stop();
  wait();
  std::lock_guard lock(canaries->mutex);
  canaries->server = nullptr;
}

// One SO_REUSEPORT acceptor per worker on the same port: the kernel spreads connections.
void server::impl::bind_listener(worker& w, const tcp::endpoint& ep) {
  auto& l = *w.listeners.emplace_back(std::make_unique<listener>(w.io, exhaustion));
  l.acceptor.open(ep.protocol());
  l.acceptor.set_option(net::socket_base::reuse_address(true));
  const int one = 1;
  ::setsockopt(l.acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  boost::system::error_code ec;
  l.acceptor.bind(ep, ec);  // listen() waits for start(): nothing is accepted before startup finished
  if (ec)
    throw config_error("server.address, server.port " + ep.address().to_string() + ":" + std::to_string(ep.port()) + ": " +
                       ec.message());
  bound_port = l.acceptor.local_endpoint().port();
}

void server::impl::start() {
  if (started) return;
  if (!config.takeover_socket.empty()) take_over();  // the listeners of the process we replace
  started = true;
  for (auto& w : workers) {
    w->guard.emplace(w->io.get_executor());
    for (auto& l : w->listeners) {
      boost::system::error_code ignored;  // a taken-over listener listens already
      if (config.takeover_socket.empty()) l->acceptor.listen(net::socket_base::max_listen_connections, ignored);
      accept(*w, *l);
    }
    w->thread = std::thread([&io = w->io] {
      hotswap::name_this_thread("httpd-io");
      io.run();
    });
  }
  control_guard.emplace(control.get_executor());
  drain_timer.emplace(control);
  check_drains_periodically();
  canary_timer.emplace(control);
  if (admin) admin->start();
  control_thread = std::thread([this] {
    hotswap::name_this_thread("httpd-control");
    control.run();
  });
  if (watch) watch->start();
  if (takeover) accepting();  // tells the old process; its connections follow
}

void server::impl::accept(worker& w, listener& l) {
  l.acceptor.async_accept(w.io, [this, &w, &l](boost::system::error_code ec, tcp::socket socket) {
    // An upgrade closed the listener after this connection was accepted: it is
    // served (that is, passed on to the new process) rather than dropped.
    // Relaxed: flags; the worker's own thread closed the listener.
    const bool pass_on = !ec && handing_over.load(std::memory_order_relaxed);
    if (ec == net::error::operation_aborted || (!l.acceptor.is_open() && !pass_on)) return;
    auto again = [this, &w, &l] {
      if (!stopping.load(std::memory_order_relaxed) && l.acceptor.is_open()) accept(w, l);
    };
    if (l.backoff.handle(ec, l.acceptor, "application", again)) return;
    if (!ec) {
      exhaustion.accepted();
      // A statistic, and each connection's canary key (its number): no partner.
      const std::uint64_t number = accepted.fetch_add(1, std::memory_order_relaxed);
      socket.set_option(tcp::no_delay(true), ec);
      // Relaxed: a count compared against a limit, no data published with it.
      if (open_connections.fetch_add(1, std::memory_order_relaxed) >= max_connections.load(std::memory_order_relaxed)) {
        open_connections.fetch_sub(1, std::memory_order_relaxed);
        rejected.fetch_add(1, std::memory_order_relaxed);
        w.service.on_refused(503);
        turn_away(socket);
      } else {
        serve(w, std::move(socket), number, {});
      }
    }
    again();
  });
}

// A connection counted in open_connections (the caller added it) from now on served by `w`.
void server::impl::serve(worker& w, tcp::socket socket, std::uint64_t number, std::string_view unparsed) {
  auto c = std::make_shared<app_service::connection_type>(beast::tcp_stream(std::move(socket)), w.service, limits,
                                                           w.connections);
  std::shared_ptr<void> count_guard(nullptr, [this](void*) {
    open_connections.fetch_sub(1, std::memory_order_relaxed);  // pairs with the caller's fetch_add; a count
  });
  c->state().counted = std::move(count_guard);
  c->state().key = number;
  c->start(unparsed);
}

void server::impl::check_drains_periodically() {
  drain_timer->expires_after(std::chrono::seconds(1));
  drain_timer->async_wait([this](boost::system::error_code ec) {
    // stop()'s cancel misses a wait that has already completed and is queued: without the flag that
    // handler would re-arm the timer and keep the control loop busy until the shutdown deadline.
    // Relaxed: stop() sets the flag before it posts the cancel to this loop, whose run orders the two.
    if (ec || stopping.load(std::memory_order_relaxed)) return;
    registry->check_drains();
    check_drains_periodically();
  });
}

// The verdict's tick: a bad canary is rolled back within one tick of the
// evidence being strong enough. It runs only while a canary does: an idle
// server is not woken every tick (it was 50 times a second, 2 ms of CPU).
// A canary's start restarts it (the registry logs each start); both run on the
// control thread, so a canary that starts as the last tick stops is seen by
// one or the other.
void server::impl::canary_started() {
  net::post(control, [this] {
    if (canary_ticking || stopping.load(std::memory_order_relaxed)) return;
    canary_ticking = true;
    judge_canaries_periodically();
  });
}

void server::impl::judge_canaries_periodically() {
  canary_timer->expires_after(std::chrono::milliseconds(canary_tick_ms.load(std::memory_order_relaxed)));
  canary_timer->async_wait([this](boost::system::error_code ec) {
    if (ec || stopping.load(std::memory_order_relaxed)) {  // as the drain timer's: no re-arm after stop()
      canary_ticking = false;
      return;
    }
    bool running = false;
    for (const auto& name : registry->names()) {
      modules::canary& c = registry->canary(name);
      if (!c.running()) continue;
      c.evaluate();
      running = running || c.running();
    }
    if (!running) {
      canary_ticking = false;
      return;
    }
    judge_canaries_periodically();
  });
}

void server::impl::on_watched_change(const watch::file_change& change) {
  if (change.kind != watch::change_kind::changed) return;
  const std::string name = change.path.filename().string();
  const std::string module = name.substr(0, std::min(name.find('-'), name.find('.')));
  const auto known = registry->names();
  if (std::find(known.begin(), known.end(), module) == known.end()) {
    std::fprintf(stderr, "watch: %s names no loaded module; ignored\n", escape_text(name).c_str());
    return;
  }
  try {
    registry->swap("watch", module, change.path);
  } catch (const modules::module_error&) {  // refused, audited and counted by the registry; the serving version serves on
  }
}

void server::impl::close_listeners(worker& w) {
  for (auto& l : w.listeners) {
    boost::system::error_code ignored;
    l->acceptor.close(ignored);
    l->backoff.cancel();
  }
}

void server::impl::stop() {
  if (stopping.exchange(true)) return;  // relaxed ordering is enough, but exchange is seq_cst: once only
  if (watch) watch->stop();
  for (auto& w : workers) {
    net::post(w->io, [&w = *w] {
      close_listeners(w);
      w.connections->shut_down_all();
      w.guard.reset();  // run() returns once the last connection and pending request are done
    });
  }
  net::post(control, [this] {
    if (admin) admin->stop();
    drain_timer->cancel();
    canary_timer->cancel();
    control_guard.reset();
  });
}

// Waits (until `deadline`) for an event loop to run out of work, then stops it.
static void finish(net::io_context& io, std::thread& thread, std::chrono::steady_clock::time_point deadline) {
  while (!io.stopped() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  io.stop();
  thread.join();
}

void server::impl::wait() {
  if (!started || joined) return;
  joined = true;
  if (takeover_thread.joinable()) takeover_thread.join();  // bounded by the old process's drain
  // Force the stragglers closed after the grace period.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(shutdown_ms.load(std::memory_order_relaxed));
  for (auto& w : workers) finish(w->io, w->thread, deadline);
  // The control loop ends once stop()'s handler has run and its admin
  // connections are done. Stopping it outright could skip that handler and
  // leave the admin socket file behind (issue 25): so wait for it too, and
  // then close the admin listeners here (again, if the handler did).
  finish(control, control_thread, deadline);
  if (admin) admin->close_listeners();
}

server::server(server_config config) : impl_(std::make_unique<impl>(std::move(config))) {}
server::~server() = default;
void server::start() { impl_->start(); }
void server::stop() { impl_->stop(); }
void server::wait() { impl_->wait(); }
void server::on_upgraded(std::function<void()> f) { impl_->on_upgraded = std::move(f); }
std::uint16_t server::port() const noexcept { return impl_->bound_port; }
std::uint16_t server::admin_port() const noexcept { return impl_->admin ? impl_->admin->port() : 0; }
hotswap::modules::registry& server::modules() noexcept { return *impl_->registry; }
std::string server::metrics_text() const { return impl_->metrics_text(); }
std::string server::status_json() const { return impl_->status_json(); }

server::apply_report server::apply(const server_config& next) { return impl_->apply(next); }

std::vector<std::string> server::restart_pending() const {
  std::lock_guard lock(impl_->routes_mutex);
  return impl_->pending_restart;
}

bool server::set_policy(call_policy p, const std::string* route_prefix) { return impl_->set_policy(p, route_prefix); }

bool server::impl::set_policy(call_policy p, const std::string* route_prefix) {
  bool found = false;
  const auto table = routes.read();
  for (const auto& r : *table) {
    if (route_prefix != nullptr && r->prefix != *route_prefix) continue;
    r->policy.store(p, std::memory_order_relaxed);  // a flag; requests read it per request, no partner
    found = true;
  }
  return found;
}

version_counts server::counts() const {
  std::map<std::pair<std::size_t, std::uint64_t>, version_count> by_route;  // (route index, version)
  for (const auto& w : impl_->workers) {
    std::lock_guard lock(w->stats.mutex);
    for (const auto& [key, vc] : w->stats.versions) {
      version_count& o = by_route[key];
      o.build = vc.build;
      for (std::size_t i = 0; i < 6; ++i) o.by_class[i] += vc.by_class[i];
    }
  }
  // Outside the workers' locks: a settings apply may hold the routes' lock while a module loads.
  version_counts out;
  for (const auto& [key, vc] : by_route) {
    version_count& o = out[{impl_->route_by_index(key.first)->module, key.second}];
    o.build = vc.build;
    for (std::size_t i = 0; i < 6; ++i) o.by_class[i] += vc.by_class[i];
  }
  return out;
}

}  // namespace hotswap::http
