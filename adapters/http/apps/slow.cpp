// Example application `slow`: the asynchronous form. GET /slow?ms=N answers
// after N milliseconds (at most 60 s) from the plugin's own timer thread. Each
// pending request holds a keepalive on this version, so a request that spans
// several swaps still completes here, on the version that started it; the
// thread is joined in shutdown, which runs only once no keepalive is left.
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "app_support.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
constexpr const char* build = "slow-" APP_STRINGIFY(APP_VERSION);
constexpr long max_delay_ms = 60'000;

struct slow_state {
  const hotswap_host_api* host = nullptr;
  std::mutex mutex;
  std::condition_variable wake;
  std::multimap<clock_type::time_point, std::pair<hotswap_http_response, long>> due;  // guarded by mutex
  bool stopping = false;                                                              // guarded by mutex
  std::thread timer;

  void run() {
    std::unique_lock lock(mutex);
    for (;;) {
      if (stopping && due.empty()) return;
      if (due.empty()) {
        wake.wait(lock);
        continue;
      }
      const auto next = due.begin()->first;
      if (clock_type::now() < next) {
        wake.wait_until(lock, next);
        continue;
      }
      const auto [response, ms] = due.begin()->second;
      due.erase(due.begin());
      lock.unlock();
      const app::writer out(response);
      out.reply(200, "text/plain", std::string(build) + " waited " + std::to_string(ms) + " ms\n");
      out.complete();
      host->keepalive_release(host->context);  // last: may let this version drain
      lock.lock();
    }
  }
};

int handle(void* state, const hotswap_http_request* request, const hotswap_http_response* response) {
  auto& s = *static_cast<slow_state*>(state);
  const app::writer out(*response);
  const long ms = app::parse_number(app::query_param(app::target(*request), "ms"), -1);
  if (ms < 0 || ms > max_delay_ms) {
    out.reply(400, "text/plain", "slow: give ?ms=N with 0 <= N <= 60000\n");
    return HOTSWAP_HTTP_DONE;
  }
  if (s.host->keepalive_acquire(s.host->context) == 0) {  // this version is leaving: answer now
    out.reply(503, "text/plain", "slow: version is shutting down\n");
    return HOTSWAP_HTTP_DONE;
  }
  {
    std::lock_guard lock(s.mutex);
    s.due.emplace(clock_type::now() + std::chrono::milliseconds(ms), std::pair{*response, ms});
  }
  s.wake.notify_one();
  return HOTSWAP_HTTP_PENDING;
}

const hotswap_http_app table = {&handle};

void* startup(const hotswap_host_api& host) {
  auto* s = new slow_state;
  s->host = &host;
  s->timer = std::thread([s] { s->run(); });
  return s;
}

void shutdown(void* state) noexcept {
  auto* s = static_cast<slow_state*>(state);
  {
    std::lock_guard lock(s->mutex);
    s->stopping = true;
  }
  s->wake.notify_one();
  s->timer.join();
  delete s;
}

}  // namespace

HOTSWAP_PLUGIN(hotswap_http_app, "slow", build, table, startup, shutdown, nullptr, nullptr,
               HOTSWAP_PLUGIN_UNLOAD_SAFE)  // shutdown joins the timer thread; pending requests hold keepalives
