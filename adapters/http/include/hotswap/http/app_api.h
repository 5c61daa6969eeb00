/* The application ABI of hotswap-httpd: what an application library exports.
 *
 * The server owns listeners, connections, parsing, limits and timers and is never swapped;
 * only the application is, through the plugin ABI (hotswap/module/plugin.h). The app's table
 * is one function, handle(). It sees the request as plain C (pointers and sizes, valid only
 * during the call) and writes its answer through the host's response functions. No C++ type
 * and no allocation crosses the boundary.
 *
 * Synchronous form: set the status, add headers, append the body, return HOTSWAP_HTTP_DONE.
 *
 * Asynchronous form: the app copies what it needs from the request, takes a keepalive on its
 * version (hotswap_host_api.keepalive_acquire, which may refuse: then answer synchronously),
 * keeps a copy of *response and returns HOTSWAP_HTTP_PENDING. Later, from any thread of its own,
 * it fills the response, calls complete() exactly once, and only then releases the keepalive.
 * The keepalive keeps that version's code loaded although newer versions may have been
 * published meanwhile, so the request finishes on the version that started it; the server
 * stamps the response with that version. The response functions stay valid until complete().
 *
 * The server answers 500 if handle returns anything else, or DONE without a status.
 *
 * Shadow runs (a canary's phase before real traffic): an app that declares
 * HOTSWAP_PLUGIN_SHADOW_SAFE in its plugin flags may be called with HOTSWAP_HTTP_SHADOW in
 * request->flags. It must then answer as it would, and change nothing outside itself (no
 * write, no send, no state another request can see): the server compares its answer with
 * the serving version's (status, body, Content-Type) and throws it away. An app that does
 * not declare the flag is never called so; flags stays 0 for it.
 */
#ifndef HOTSWAP_HTTP_APP_API_H
#define HOTSWAP_HTTP_APP_API_H

#include <stddef.h>
#include <stdint.h>

#include <hotswap/module/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { HOTSWAP_HTTP_DONE = 0, HOTSWAP_HTTP_PENDING = 1 };

/* hotswap_http_request.flags */
#define HOTSWAP_HTTP_SHADOW 1u /* discard side effects: the answer is compared, then dropped */

typedef struct hotswap_http_header {
  const char* name;
  size_t name_size;
  const char* value;
  size_t value_size;
} hotswap_http_header;

/* Valid only during handle(): copy what asynchronous work needs. */
typedef struct hotswap_http_request {
  const char* method;
  size_t method_size;
  const char* target; /* path and query, as sent */
  size_t target_size;
  const hotswap_http_header* headers;
  size_t header_count;
  const char* body;
  size_t body_size;
  uint32_t flags; /* HOTSWAP_HTTP_SHADOW or 0 (added last: apps built before it never read it) */
} hotswap_http_request;

/* The server's response under construction: call from one thread at a time. */
typedef struct hotswap_http_response {
  void* context; /* pass back to every function below */
  void (*set_status)(void* context, int status);
  void (*add_header)(void* context, const char* name, size_t name_size, const char* value, size_t value_size);
  void (*append_body)(void* context, const char* data, size_t size);
  /* Asynchronous form only: hands the response to the server, exactly once. */
  void (*complete)(void* context);
} hotswap_http_response;

typedef struct hotswap_http_app {
  /* state: what the plugin's startup returned. Returns HOTSWAP_HTTP_DONE or HOTSWAP_HTTP_PENDING. */
  int (*handle)(void* state, const hotswap_http_request* request, const hotswap_http_response* response);
} hotswap_http_app;

#ifdef __cplusplus
} /* extern "C" */

HOTSWAP_DECLARE_INTERFACE(hotswap_http_app, "hotswap.http.app", 1)
#endif

#endif /* HOTSWAP_HTTP_APP_API_H */
