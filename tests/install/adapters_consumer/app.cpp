// An HTTP application written against the installed app_api.h: answers "42".
#include <hotswap/http/app_api.h>

namespace {

int handle(void*, const hotswap_http_request*, const hotswap_http_response* response) {
  response->set_status(response->context, 200);
  response->append_body(response->context, "42", 2);
  return HOTSWAP_HTTP_DONE;
}
const hotswap_http_app table = {&handle};
void* startup(const hotswap_host_api&) { return nullptr; }
void shutdown(void*) noexcept {}

}  // namespace

HOTSWAP_PLUGIN(hotswap_http_app, "user_app", "1.0.0", table, startup, shutdown, nullptr, nullptr,
               HOTSWAP_PLUGIN_UNLOAD_SAFE)
