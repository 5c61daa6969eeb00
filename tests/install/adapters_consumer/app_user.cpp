// hotswap::http_app from a package consumer: load the application as hotswap-httpd
// would (a registry of hotswap_http_app modules) and hand it one request.
#include <hotswap/http/app_api.h>
#include <hotswap/module/module.hpp>

#include <cstdio>
#include <filesystem>
#include <string>

int main() {
  const std::filesystem::path app = PLUGIN_PATH;
  hotswap::domain dom;
  hotswap::modules::registry apps(dom, {.loader = {.policy = {.allowed_dir = app.parent_path()}}});
  apps.add<hotswap_http_app>("consumer", "app", app);
  struct reply {
    int status = 0;
    std::string body;
  } r;
  const hotswap_http_response response{
      &r, [](void* c, int status) { static_cast<reply*>(c)->status = status; },
      [](void*, const char*, size_t, const char*, size_t) {},
      [](void* c, const char* data, size_t size) { static_cast<reply*>(c)->body.append(data, size); }, nullptr};
  const hotswap_http_request request{"GET", 3, "/", 1, nullptr, 0, nullptr, 0};
  apps.get<hotswap_http_app>("app").call([&](const hotswap_http_app& a) { return a.handle(nullptr, &request, &response); });
  std::printf("app_user's application answers %d %s\n", r.status, r.body.c_str());
  return r.status == 200 && r.body == "42" ? 0 : 1;
}
