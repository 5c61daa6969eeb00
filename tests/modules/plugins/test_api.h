/* The interface every test plugin implements (C, shared by host and plugins). */
#ifndef HOTSWAP_TEST_API_H
#define HOTSWAP_TEST_API_H

#include <hotswap/module/plugin.h>
#include <stdint.h>

/* What a plugin function returns when it is called while its version is not
 * started (before startup or after shutdown): a call into unloaded code. */
#define TEST_API_DEAD UINT64_C(0xdeaddeaddeaddead)

typedef struct test_api {
  /* (PLUGIN_VERSION << 32) | generation, where generation counts migrations. */
  uint64_t (*identify)(void);
  uint64_t (*add)(uint64_t a, uint64_t b);
  /* Takes / drops a keepalive through the host API: outstanding async work. */
  int (*hold_keepalive)(void);
  void (*release_keepalive)(void);
  /* Starts work on a plugin thread that holds a keepalive until finish_work(). */
  int (*start_work)(void);
  void (*finish_work)(void);
} test_api;

#ifdef __cplusplus
HOTSWAP_DECLARE_INTERFACE(test_api, "hotswap.test", 1)
#endif

#endif
