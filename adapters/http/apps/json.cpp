// Example application `json`: parses a JSON body with nlohmann-json and
// answers a small computation over {"numbers": [...]}: count and sum, and
// from version 2 on also the mean. Malformed input gets a 400 that says why.
#include <nlohmann/json.hpp>

#include "app_support.hpp"

namespace {

constexpr const char* build = "json-" APP_STRINGIFY(APP_VERSION);

int handle(void*, const hotswap_http_request* request, const hotswap_http_response* response) {
  const app::writer out(*response);
  try {
    const nlohmann::json in = nlohmann::json::parse(app::body(*request));
    const nlohmann::json& numbers = in.at("numbers");
    if (!numbers.is_array()) throw std::invalid_argument("\"numbers\" must be an array");
    double sum = 0;
    for (const auto& n : numbers) sum += n.get<double>();
    nlohmann::json result = {{"count", numbers.size()}, {"sum", sum}, {"build", build}};
    if (APP_VERSION >= 2 && !numbers.empty()) result["mean"] = sum / static_cast<double>(numbers.size());
    out.reply(200, "application/json", result.dump() + "\n");
  } catch (const std::exception& e) {  // nothing may cross the C boundary
    out.reply(400, "application/json", nlohmann::json{{"error", e.what()}}.dump() + "\n");
  }
  return HOTSWAP_HTTP_DONE;
}

const hotswap_http_app table = {&handle};
void* startup(const hotswap_host_api&) { return nullptr; }
void shutdown(void*) noexcept {}

void self_test(void*) {
  if (nlohmann::json::parse(R"({"numbers":[1,2]})").at("numbers").size() != 2)
    throw std::runtime_error("json self test failed");
}

}  // namespace

HOTSWAP_PLUGIN(hotswap_http_app, "json", build, table, startup, shutdown, nullptr, self_test,
               HOTSWAP_PLUGIN_UNLOAD_SAFE)  // no thread, handler or callback outlives shutdown
