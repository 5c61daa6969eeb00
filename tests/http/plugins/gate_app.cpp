// Test application `gate`: a swap to it stays in progress until the test lets
// it finish. Its startup, when HOTSWAP_TEST_GATE names a directory, creates
// <dir>/started and then waits (at most 5 s, then fails) for <dir>/release.
// The preflight child runs with an empty environment, so only the host's own
// startup waits: the test knows the swap is past its checks and inside the
// module's hooks before it sends a second request.
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

#include <hotswap/http/app_api.h>

namespace {

constexpr std::string_view text = "hello from gate\n";

int handle(void*, const hotswap_http_request*, const hotswap_http_response* r) {
  r->set_status(r->context, 200);
  r->add_header(r->context, "Content-Type", 12, "text/plain", 10);
  r->append_body(r->context, text.data(), text.size());
  return HOTSWAP_HTTP_DONE;
}

bool exists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

const hotswap_http_app table = {&handle};

void* startup(const hotswap_host_api&) {
  const char* dir = std::getenv("HOTSWAP_TEST_GATE");
  if (dir == nullptr) return nullptr;
  std::ofstream(std::string(dir) + "/started") << "in startup\n";
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!exists(std::string(dir) + "/release")) {
    if (std::chrono::steady_clock::now() > until) throw std::runtime_error("gate: not released within 5 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return nullptr;
}
void shutdown(void*) noexcept {}

}  // namespace

HOTSWAP_PLUGIN(hotswap_http_app, "gate", "gate-1", table, startup, shutdown, nullptr, nullptr,
               HOTSWAP_PLUGIN_UNLOAD_SAFE)  // no thread, handler or callback outlives shutdown
