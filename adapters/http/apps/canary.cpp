// Example applications to try canaries on: a `greeting` that is bad in one known way
// (CANARY_FAULT): 1 answers 500 to every 20th request (5%), 2 answers 20 ms
// later than greeting, 3 answers another body for 1% of paths (and declares
// shadow runs safe: it has no side effects), 4 starts fine and answers 500 to
// every request.
#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <thread>

#include <hotswap/http/app_api.h>

namespace {

constexpr std::string_view text = "hello from greeting-1\n";  // what stable says: shadow runs compare equal

void reply(const hotswap_http_response* r, int status) {
  r->set_status(r->context, status);
  r->add_header(r->context, "Content-Type", 12, "text/plain", 10);
  r->append_body(r->context, text.data(), text.size());
}

int handle(void*, [[maybe_unused]] const hotswap_http_request* request, const hotswap_http_response* r) {
#if CANARY_FAULT == 1
  static std::atomic<unsigned> calls{0};
  // Relaxed: a counter that picks every 20th call; no data is published with it.
  reply(r, calls.fetch_add(1, std::memory_order_relaxed) % 20 == 19 ? 500 : 200);
#elif CANARY_FAULT == 2
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  reply(r, 200);
#elif CANARY_FAULT == 3
  const std::string_view target(request->target, request->target_size);
  if (std::hash<std::string_view>{}(target) % 100 == 0) {
    r->set_status(r->context, 200);
    r->add_header(r->context, "Content-Type", 12, "text/plain", 10);
    r->append_body(r->context, "hello from elsewhere\n", 21);
  } else {
    reply(r, 200);
  }
#else
  reply(r, 500);
#endif
  return HOTSWAP_HTTP_DONE;
}

const hotswap_http_app table = {&handle};
void* startup(const hotswap_host_api&) { return nullptr; }
void shutdown(void*) noexcept {}

}  // namespace

#define CANARY_STR2(x) #x
#define CANARY_STR(x) CANARY_STR2(x)
HOTSWAP_PLUGIN(hotswap_http_app, "greeting", "canary-fault-" CANARY_STR(CANARY_FAULT), table, startup, shutdown, nullptr,
               nullptr, HOTSWAP_PLUGIN_UNLOAD_SAFE | (CANARY_FAULT == 3 ? HOTSWAP_PLUGIN_SHADOW_SAFE : 0u))
