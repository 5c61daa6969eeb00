// A database container written against the installed container_api.h: answer() returns 42.
#include <hotswap/db/container_api.h>

namespace {

int answer(void*, sqlite3_context* ctx, int, sqlite3_value**, hotswap_plugin_error*) {
  sqlite3_result_int(ctx, 42);
  return 0;
}
const hotswap_db_function functions[] = {{"answer", 0, HOTSWAP_DB_SCALAR, HOTSWAP_DB_DETERMINISTIC, &answer, nullptr, nullptr}};
int conn_startup(void*, sqlite3*, const hotswap_db_saved_state*, void** state, hotswap_plugin_error*) {
  *state = nullptr;
  return 0;
}
void conn_shutdown(void*, sqlite3*, void*) {}
const hotswap_db_container_api table = {1, functions, &conn_startup, &conn_shutdown, nullptr};
void* startup(const hotswap_host_api&) { return nullptr; }
void shutdown(void*) noexcept {}

}  // namespace

HOTSWAP_PLUGIN(hotswap_db_container_api, "user_container", "1.0.0", table, startup, shutdown, nullptr, nullptr,
               HOTSWAP_PLUGIN_UNLOAD_SAFE)
