// Example application `greeting`: answers every request with a line naming
// its build, so a client can see which version served it. Synchronous.
#include "app_support.hpp"

namespace {

constexpr const char* build = "greeting-" APP_STRINGIFY(APP_VERSION);
constexpr std::string_view text = "hello from greeting-" APP_STRINGIFY(APP_VERSION) "\n";

int handle(void*, const hotswap_http_request*, const hotswap_http_response* response) {
  app::writer(*response).reply(200, "text/plain", text);
  return HOTSWAP_HTTP_DONE;
}

const hotswap_http_app table = {&handle};
void* startup(const hotswap_host_api&) { return nullptr; }
void shutdown(void*) noexcept {}

}  // namespace

HOTSWAP_PLUGIN(hotswap_http_app, "greeting", build, table, startup, shutdown, nullptr, nullptr,
               HOTSWAP_PLUGIN_UNLOAD_SAFE)  // no thread, handler or callback outlives shutdown
