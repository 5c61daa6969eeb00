#include <sys/socket.h>

#include <cstdio>
#include <hotswap/http/admin_request.hpp>

#include "admin_service.hpp"
#include "server_impl.hpp"

namespace hotswap::http {

namespace detail {

namespace {

// One request in the hands of an application version: the response under
// construction and what finishing it needs. Owned by whoever finishes it: the
// worker for a synchronous answer, else the app until complete() posts it back.
struct exchange {
  std::shared_ptr<app_service::connection_type> connection;
  app_service& service;
  std::size_t route;
  version_info version;
  std::chrono::steady_clock::time_point started;
  response res;
  bool bad = false;  // the app broke the ABI's rules: answer 500
  net::executor_work_guard<net::any_io_executor> keep_loop;  // a pending request keeps its worker running
  hotswap_http_response c_api{};

  exchange(std::shared_ptr<app_service::connection_type> c, app_service& s, std::size_t r, version_info v)
      : connection(std::move(c)),
        service(s),
        route(r),
        version(std::move(v)),
        started(std::chrono::steady_clock::now()),
        res(bhttp::status::ok, 11),
        keep_loop(connection->stream().get_executor()) {
    res.result(0u);  // unset until the app sets it
    c_api = {this, &set_status, &add_header, &append_body, &complete};
  }

  void finish() {
    if (bad || res.result_int() == 0) {
      res = host_response(bhttp::status::internal_server_error, "the application gave no valid response");
    }
    res.set(version_header, std::to_string(version.number));
    res.set(build_header, version.label);
    service.record(route, version, res.result_int(), std::chrono::steady_clock::now() - started);
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

const route_entry* app_service::match(std::string_view target) const noexcept {
  for (const auto& r : routes_)  // longest prefix first (sorted at start)
    if (r->matches(target)) return r.get();
  return nullptr;
}

void app_service::on_request(std::shared_ptr<connection_type> c, request&& req) {
  const route_entry* r = match(req.target());
  if (r == nullptr) {
    on_refused(404);
    return c->send(host_response(bhttp::status::not_found, "no route for this path"));
  }
  // Relaxed: a flag read per request; the registry/slot orders the module itself.
  const version_policy policy = r->policy.load(std::memory_order_relaxed);
  auto& pins = c->state().pins;
  if (pins.size() <= r->index) pins.resize(r->index + 1);
  app_pin fresh;
  const app_pin* use = nullptr;
  if (policy == version_policy::pinned) {
    if (!pins[r->index]) pins[r->index] = r->ref.pin();  // the connection's version from now on
    use = &pins[r->index];
  } else {
    pins[r->index].reset();  // switched back to per-request: let the pinned version drain
    fresh = r->ref.pin();
    use = &fresh;
  }

  auto* e = new exchange(c, *this, r->index, use->version());
  // The C view of the request: valid during handle() only.
  thread_local std::vector<hotswap_http_header> headers;
  headers.clear();
  for (const auto& f : req)
    headers.push_back({f.name_string().data(), f.name_string().size(), f.value().data(), f.value().size()});
  const std::string_view method = req.method_string();
  const std::string_view target = req.target();
  const hotswap_http_request creq{method.data(), method.size(), target.data(), target.size(), headers.data(),
                                  headers.size(), req.body().data(), req.body().size()};
  const int rc = (*use)->handle(use->state(), &creq, &e->c_api);
  if (rc == HOTSWAP_HTTP_PENDING) return;  // *e belongs to the app until complete()
  std::unique_ptr<exchange> owned(e);
  if (rc != HOTSWAP_HTTP_DONE) owned->bad = true;
  owned->finish();
}

void app_service::on_refused(unsigned status) {
  std::lock_guard lock(stats_.mutex);
  ++stats_.refused[status];
}

void app_service::record(std::size_t route, const version_info& v, unsigned status,
                         std::chrono::steady_clock::duration d) {
  const double seconds = std::chrono::duration<double>(d).count();
  std::size_t bucket = 0;
  while (bucket < latency_bounds.size() && seconds > latency_bounds[bucket]) ++bucket;
  std::lock_guard lock(stats_.mutex);
  version_count& vc = stats_.versions[{route, v.number}];
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

std::vector<modules::module_event> audit_log::recent() const {
  std::lock_guard lock(mutex_);
  return {events_.begin(), events_.end()};
}

}  // namespace detail

using namespace detail;

server::impl::impl(server_config c) : config(std::move(c)), audit(std::make_shared<audit_log>(config.audit_events)) {
  if (config.plugin_dir.empty()) throw config_error("plugin-dir: required (the only directory modules load from)");
  if (config.routes.empty()) throw config_error("route: at least one is required (e.g. --route /=greeting:greeting-1.so)");
  config.plugin_dir = std::filesystem::absolute(config.plugin_dir);
  modules::registry_options ro;
  ro.loader.policy.allowed_dir = config.plugin_dir;
  ro.loader.shadow.dir = config.shadow_dir;
  // The shadow copy is private and re-made after a crash: flushing it to disk
  // protects nothing, and on a disk-backed directory it was the costliest stage
  // of a swap left once the preflight is remembered (CPU and wall alike).
  ro.loader.shadow.fsync = false;
  ro.loader.log = [a = audit](const modules::module_event& e) { a->add(e); };
  registry.emplace(domain, std::move(ro));

  // Modules in the order the routes name them; then the routes, longest
  // prefix first, so the first match is the most specific.
  for (const route_config& r : config.routes) {
    const auto known = registry->names();
    if (std::find(known.begin(), known.end(), r.module) != known.end()) continue;
    if (r.file.empty())
      throw config_error("route " + r.prefix + ": module '" + r.module + "' is not loaded by an earlier route; give MODULE:FILE");
    const auto file = resolve_plugin_file(config.plugin_dir, r.file);
    if (const auto* refusal = std::get_if<admin_refusal>(&file))
      throw config_error("route " + r.prefix + ": " + refusal->message);
    registry->add<hotswap_http_app>("startup", r.module, std::get<std::filesystem::path>(file));
  }
  std::vector<route_config> rc = config.routes;
  std::stable_sort(rc.begin(), rc.end(), [](const auto& a, const auto& b) { return a.prefix.size() > b.prefix.size(); });
  for (const route_config& r : rc)
    routes.push_back(std::make_unique<route_entry>(r.prefix, r.module, routes.size(),
                                                   registry->get<hotswap_http_app>(r.module),
                                                   r.policy.value_or(config.policy)));

  limits = {config.max_header_bytes, config.max_body_bytes, config.idle_timeout, config.read_timeout,
            config.write_timeout};
  const unsigned n = config.threads != 0 ? config.threads : std::max(1u, std::thread::hardware_concurrency());
  const auto address = net::ip::make_address(config.address);
  for (unsigned i = 0; i < n; ++i) {
    auto w = std::make_unique<worker>(routes);
    // One SO_REUSEPORT acceptor per worker on the same port: the kernel spreads connections.
    tcp::endpoint ep(address, bound_port != 0 ? bound_port : config.port);
    w->acceptor.emplace(w->io);
    w->acceptor->open(ep.protocol());
    w->acceptor->set_option(net::socket_base::reuse_address(true));
    const int one = 1;
    ::setsockopt(w->acceptor->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    boost::system::error_code ec;
    w->acceptor->bind(ep, ec);
    if (ec) throw config_error("listen " + config.address + ":" + std::to_string(ep.port()) + ": " + ec.message());
    w->acceptor->listen(net::socket_base::max_listen_connections);
    bound_port = w->acceptor->local_endpoint().port();
    workers.push_back(std::move(w));
  }
  if (config.admin_enabled || !config.admin_socket.empty()) admin = std::make_unique<admin_service>(*this, control);
  if (!config.watch_dir.empty()) {
    const auto dir = std::filesystem::weakly_canonical(std::filesystem::absolute(config.watch_dir));
    const auto allowed = std::filesystem::weakly_canonical(config.plugin_dir);
    if (dir != allowed && !hotswap::modules::detail::path_within(dir, allowed))
      throw config_error("watch " + config.watch_dir.string() + ": must be inside plugin-dir " + allowed.string());
    watch = std::make_unique<hotswap::watch::watcher>(dir, watch::watch_options{.filter = watch::name_ends_with(".so")},
                                              [this](const watch::file_change& c) { on_watched_change(c); });
  }
}

server::impl::~impl() {
  stop();
  wait();
}

void server::impl::start() {
  if (started) return;
  started = true;
  for (auto& w : workers) {
    w->guard.emplace(w->io.get_executor());
    accept(*w);
    w->thread = std::thread([&io = w->io] { io.run(); });
  }
  control_guard.emplace(control.get_executor());
  drain_timer.emplace(control);
  check_drains_periodically();
  if (admin) admin->start();
  control_thread = std::thread([this] { control.run(); });
  if (watch) watch->start();
}

void server::impl::accept(worker& w) {
  w.acceptor->async_accept(w.io, [this, &w](boost::system::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !w.acceptor->is_open()) return;
    if (!ec) {
      accepted.fetch_add(1, std::memory_order_relaxed);  // a statistic: no partner
      socket.set_option(tcp::no_delay(true), ec);
      // Relaxed: a count compared against a limit, no data published with it.
      if (open_connections.fetch_add(1, std::memory_order_relaxed) >= config.max_connections) {
        open_connections.fetch_sub(1, std::memory_order_relaxed);
        rejected.fetch_add(1, std::memory_order_relaxed);
        w.service.on_refused(503);
        static constexpr std::string_view busy =
            "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nX-Hotswap-Version: 0\r\nContent-Length: 0\r\n\r\n";
        boost::system::error_code ignored;
        socket.non_blocking(true, ignored);
        socket.write_some(net::buffer(busy), ignored);  // best effort; the socket's buffer is empty
        socket.close(ignored);
      } else {
        auto c = std::make_shared<app_service::connection_type>(beast::tcp_stream(std::move(socket)), w.service, limits,
                                                                 w.connections);
        std::shared_ptr<void> count_guard(nullptr, [this](void*) {
          open_connections.fetch_sub(1, std::memory_order_relaxed);  // pairs with the fetch_add above; a count
        });
        c->state().pins.reserve(routes.size());
        c->state().counted = std::move(count_guard);
        c->start();
      }
    }
    if (!stopping.load(std::memory_order_relaxed)) accept(w);  // relaxed: a flag; stop() also closes the acceptor
  });
}

void server::impl::check_drains_periodically() {
  drain_timer->expires_after(std::chrono::seconds(1));
  drain_timer->async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    registry->check_drains();
    check_drains_periodically();
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

void server::impl::stop() {
  if (stopping.exchange(true)) return;  // relaxed ordering is enough, but exchange is seq_cst: once only
  if (watch) watch->stop();
  for (auto& w : workers) {
    net::post(w->io, [&w = *w] {
      boost::system::error_code ignored;
      w.acceptor->close(ignored);
      w.connections->shut_down_all();
      w.guard.reset();  // run() returns once the last connection and pending request are done
    });
  }
  net::post(control, [this] {
    if (admin) admin->stop();
    drain_timer->cancel();
    control_guard.reset();
  });
}

void server::impl::wait() {
  if (!started || joined) return;
  joined = true;
  // Force the stragglers closed after the grace period.
  const auto deadline = std::chrono::steady_clock::now() + config.shutdown_timeout;
  for (auto& w : workers) {
    while (!w->io.stopped() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    w->io.stop();
    w->thread.join();
  }
  control.stop();
  control_thread.join();
}

server::server(server_config config) : impl_(std::make_unique<impl>(std::move(config))) {}
server::~server() = default;
void server::start() { impl_->start(); }
void server::stop() { impl_->stop(); }
void server::wait() { impl_->wait(); }
std::uint16_t server::port() const noexcept { return impl_->bound_port; }
std::uint16_t server::admin_port() const noexcept { return impl_->admin ? impl_->admin->port() : 0; }
hotswap::modules::registry& server::modules() noexcept { return *impl_->registry; }
std::string server::metrics_text() const { return impl_->metrics_text(); }
std::string server::status_json() const { return impl_->status_json(); }

bool server::set_policy(version_policy p, const std::string* route_prefix) {
  bool found = false;
  for (auto& r : impl_->routes) {
    if (route_prefix != nullptr && r->prefix != *route_prefix) continue;
    r->policy.store(p, std::memory_order_relaxed);  // a flag; requests read it per request, no partner
    found = true;
  }
  return found;
}

version_counts server::counts() const {
  version_counts out;
  for (const auto& w : impl_->workers) {
    std::lock_guard lock(w->stats.mutex);
    for (const auto& [key, vc] : w->stats.versions) {
      version_count& o = out[{impl_->routes[key.first]->module, key.second}];
      o.build = vc.build;
      for (std::size_t i = 0; i < 6; ++i) o.by_class[i] += vc.by_class[i];
    }
  }
  return out;
}

}  // namespace hotswap::http
