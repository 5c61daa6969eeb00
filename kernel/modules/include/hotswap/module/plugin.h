/* hotswap plugin ABI: what a .so exports so that a host can load, start, swap and unload it.
 *
 * A plugin exports ONE C symbol, `hotswap_plugin_entry`, returning a pointer to a static
 * descriptor: the ABI version, the interface it implements (name, version and a table of C
 * function pointers), its own name and build version, and its lifecycle hooks. Only C types
 * cross the boundary: a failing hook returns non-zero and writes a code and a message into an
 * error buffer the host owns; no exception, allocation or C++ type crosses it.
 *
 * Lifecycle, as the host drives it (module_slot.hpp):
 *   startup(host, &state)     the new version builds its state; the old one keeps serving
 *   migrate(state, from)      optional: take over the serving version's state
 *   self_test(state)          optional: refuse to be published
 *   ... published, serving, replaced, drained (no caller inside, no pin, no keepalive) ...
 *   shutdown(state)           must stop and join every thread the plugin started
 *   dlclose                   only if the plugin declared itself unload-safe; the host then
 *                             checks that the code really left the process. Otherwise the
 *                             code stays mapped ("retained").
 *
 * Metadata before code. Besides the entry symbol a plugin carries an ELF note
 * (section .note.hotswap, type HOTSWAP_PLUGIN_NOTE_TYPE) with the same identity as plain
 * bytes: ABI version, interface name and version, module name, build version, flags (unload
 * safety) and a seal (the SHA-256 of the whole file with the seal's own 32 bytes zeroed,
 * written after linking by hotswap-seal, which hotswap_add_plugin() runs). The host reads and
 * checks it before dlopen, so a plugin for another interface, or a file that is half one build
 * and half another, never runs a line of code. HOTSWAP_PLUGIN emits the note; a plugin with a
 * hand-written descriptor adds HOTSWAP_PLUGIN_METADATA(...) itself.
 *
 * A C++ plugin is a few lines (see HOTSWAP_PLUGIN below):
 *
 *   // calc_api.h, shared by host and plugins
 *   typedef struct calc_api { uint64_t (*add)(uint64_t, uint64_t); } calc_api;
 *   HOTSWAP_DECLARE_INTERFACE(calc_api, "example.calc", 1)
 *
 *   // calc.cpp, built as a shared library with -fno-gnu-unique (see tests/modules/CMakeLists.txt)
 *   static uint64_t add(uint64_t a, uint64_t b) { return a + b; }
 *   static const calc_api table = {&add};
 *   static void* start(const hotswap_host_api&) { return nullptr; }   // may throw
 *   static void stop(void*) noexcept {}
 *   HOTSWAP_PLUGIN(calc_api, "calc", "1.0.0", table, start, stop, nullptr, nullptr)
 *   // or, for a plugin whose code may be unmapped after shutdown (see kernel/modules/README.md):
 *   HOTSWAP_PLUGIN(calc_api, "calc", "1.0.0", table, start, stop, nullptr, nullptr, HOTSWAP_PLUGIN_UNLOAD_SAFE)
 */
#ifndef HOTSWAP_MODULE_PLUGIN_H
#define HOTSWAP_MODULE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HOTSWAP_PLUGIN_ABI_VERSION 1u
#define HOTSWAP_PLUGIN_ENTRY_SYMBOL "hotswap_plugin_entry"
#define HOTSWAP_PLUGIN_EXPORT __attribute__((visibility("default")))
#define HOTSWAP_PLUGIN_MESSAGE_MAX 256

/* Codes a hook may return; any other non-zero value is the plugin's own. */
enum { HOTSWAP_PLUGIN_OK = 0, HOTSWAP_PLUGIN_FAILED = 1, HOTSWAP_PLUGIN_EXCEPTION = 2 };

/* Filled by a failing hook; owned by the host. */
typedef struct hotswap_plugin_error {
  int32_t code;
  char message[HOTSWAP_PLUGIN_MESSAGE_MAX];
} hotswap_plugin_error;

/* What the host offers a plugin version; valid from startup until shutdown returns.
 * keepalive: work the plugin has in flight (a timer, a callback it expects, a request it
 * finishes on its own thread) holds its version loaded. acquire returns 1 when held and 0
 * when the version is already on its way out (then do not start the work); each successful
 * acquire needs one release. Threads the plugin owns are joined in shutdown instead: a
 * keepalive held for a thread's whole life would keep the version from ever draining. */
typedef struct hotswap_host_api {
  uint32_t size; /* sizeof(hotswap_host_api) in the host's build */
  void* context; /* pass back to every function below */
  int (*keepalive_acquire)(void* context);
  void (*keepalive_release)(void* context);
  void (*log)(void* context, int level, const char* message);
} hotswap_host_api;

/* What migrate learns about the version it replaces. The old version keeps serving while
 * migrate runs: copy a snapshot, or keep state that must not diverge in the host. */
typedef struct hotswap_migration {
  void* old_state;
  const char* old_module_name;
  const char* old_build_version;
  uint32_t old_interface_version;
} hotswap_migration;

typedef struct hotswap_plugin_descriptor {
  uint32_t abi_version;     /* HOTSWAP_PLUGIN_ABI_VERSION: checked first */
  uint32_t descriptor_size; /* sizeof(hotswap_plugin_descriptor) in the plugin's build */
  const char* interface_name;
  uint32_t interface_version;
  const char* module_name;
  const char* build_version;
  const void* table; /* the interface's function table */
  size_t table_size; /* sizeof the table in the plugin's build */
  int (*startup)(const hotswap_host_api* host, void** state, hotswap_plugin_error* error);
  void (*shutdown)(void* state);
  int (*migrate)(void* state, const hotswap_migration* from, hotswap_plugin_error* error); /* optional */
  int (*self_test)(void* state, hotswap_plugin_error* error);                              /* optional */
} hotswap_plugin_descriptor;

typedef const hotswap_plugin_descriptor* (*hotswap_plugin_entry_fn)(void);

/* The metadata note: read from the file by the host before dlopen. Fixed-size plain data. */
#define HOTSWAP_PLUGIN_NOTE_NAME "hotswap" /* 8 bytes with the NUL */
#define HOTSWAP_PLUGIN_NOTE_TYPE 0x48530001u
#define HOTSWAP_PLUGIN_TEXT_MAX 64 /* interface, module and build strings, NUL included */
/* Flags: the plugin promises that once shutdown returns, none of its code can run again (no
 * thread, signal handler, callback registered elsewhere or thread_local destructor left), so
 * the host may dlclose it. Without it the host keeps the code mapped after shutdown. */
#define HOTSWAP_PLUGIN_UNLOAD_SAFE 1u
/* Flags: the plugin supports shadow runs. A call the host makes with the interface's own
 * "discard side effects" flag (hotswap_http_app: HOTSWAP_HTTP_SHADOW) computes its answer and
 * changes nothing outside itself: no write, no send, no state another call can see. A host
 * mirrors calls to a canary candidate (canary.hpp) only if it declared this flag. */
#define HOTSWAP_PLUGIN_SHADOW_SAFE 2u

typedef struct hotswap_plugin_metadata {
  uint32_t abi_version;
  uint32_t interface_version;
  uint32_t flags;
  uint32_t metadata_size; /* sizeof(hotswap_plugin_metadata) in the plugin's build */
  char interface_name[HOTSWAP_PLUGIN_TEXT_MAX];
  char module_name[HOTSWAP_PLUGIN_TEXT_MAX];
  char build_version[HOTSWAP_PLUGIN_TEXT_MAX];
  uint8_t seal[32]; /* SHA-256 of the file with these bytes zeroed; all zero: not sealed */
} hotswap_plugin_metadata;

typedef struct hotswap_plugin_note {
  uint32_t namesz, descsz, type; /* an ELF note header (Elf32_Nhdr and Elf64_Nhdr alike) */
  char name[8];
  hotswap_plugin_metadata desc;
} hotswap_plugin_note;

/* Writes an error and returns its code (never 0), for hooks written in C. */
static inline int hotswap_plugin_fail(hotswap_plugin_error* error, int code, const char* message) {
  if (code == 0) code = HOTSWAP_PLUGIN_FAILED;
  if (error != NULL) {
    size_t n = message != NULL ? strlen(message) : 0;
    if (n >= HOTSWAP_PLUGIN_MESSAGE_MAX) n = HOTSWAP_PLUGIN_MESSAGE_MAX - 1;
    if (n != 0) memcpy(error->message, message, n);
    error->message[n] = '\0';
    error->code = code;
  }
  return code;
}

#ifdef __cplusplus
} /* extern "C" */

#include <cstddef>
#include <exception>
#include <type_traits>

namespace hotswap {

/// Names an interface (a C struct of function pointers) for host and plugins alike.
/// Specialise it with HOTSWAP_DECLARE_INTERFACE at global scope in the interface's header.
template <class Interface>
struct interface_traits;

namespace plugin {

/// Runs f(); an exception becomes an error code and message instead of crossing the ABI.
template <class F>
int guard(hotswap_plugin_error* error, F&& f) noexcept {
  try {
    f();
    return HOTSWAP_PLUGIN_OK;
  } catch (const std::exception& e) {
    return hotswap_plugin_fail(error, HOTSWAP_PLUGIN_EXCEPTION, e.what());
  } catch (...) {
    return hotswap_plugin_fail(error, HOTSWAP_PLUGIN_EXCEPTION, "unknown exception");
  }
}

/// C hooks around C++ ones:  void* startup(const hotswap_host_api&)   (may throw)
///                           void shutdown(void* state) noexcept
///                           void migrate(void* state, const hotswap_migration&)   (may throw; or nullptr)
///                           void self_test(void* state)   (may throw; or nullptr)
template <auto Startup, auto Shutdown, auto Migrate, auto SelfTest>
struct hooks {
  static int startup(const hotswap_host_api* host, void** state, hotswap_plugin_error* error) {
    return guard(error, [&] { *state = Startup(*host); });
  }
  static void shutdown(void* state) { Shutdown(state); }
  static int migrate(void* state, const hotswap_migration* from, hotswap_plugin_error* error) {
    if constexpr (!std::is_null_pointer_v<decltype(Migrate)>) return guard(error, [&] { Migrate(state, *from); });
    return 0;
  }
  static int self_test(void* state, hotswap_plugin_error* error) {
    if constexpr (!std::is_null_pointer_v<decltype(SelfTest)>) return guard(error, [&] { SelfTest(state); });
    return 0;
  }
  static constexpr auto migrate_ptr = std::is_null_pointer_v<decltype(Migrate)> ? nullptr : &migrate;
  static constexpr auto self_test_ptr = std::is_null_pointer_v<decltype(SelfTest)> ? nullptr : &self_test;
};

constexpr std::size_t text_length(const char* s) {
  std::size_t n = 0;
  while (s[n] != '\0') ++n;
  return n;
}

constexpr void copy_text(char (&to)[HOTSWAP_PLUGIN_TEXT_MAX], const char* from) {
  for (std::size_t i = 0; from[i] != '\0' && i + 1 < HOTSWAP_PLUGIN_TEXT_MAX; ++i) to[i] = from[i];
}

/// The note HOTSWAP_PLUGIN_METADATA places in .note.hotswap (seal zero until hotswap-seal runs).
constexpr hotswap_plugin_note make_note(const char* interface_name, uint32_t interface_version, const char* module_name,
                                        const char* build_version, uint32_t flags) {
  hotswap_plugin_note n{};
  n.namesz = sizeof HOTSWAP_PLUGIN_NOTE_NAME;
  n.descsz = sizeof(hotswap_plugin_metadata);
  n.type = HOTSWAP_PLUGIN_NOTE_TYPE;
  for (std::size_t i = 0; i < sizeof HOTSWAP_PLUGIN_NOTE_NAME; ++i) n.name[i] = HOTSWAP_PLUGIN_NOTE_NAME[i];
  n.desc.abi_version = HOTSWAP_PLUGIN_ABI_VERSION;
  n.desc.interface_version = interface_version;
  n.desc.flags = flags;
  n.desc.metadata_size = sizeof(hotswap_plugin_metadata);
  copy_text(n.desc.interface_name, interface_name);
  copy_text(n.desc.module_name, module_name);
  copy_text(n.desc.build_version, build_version);
  return n;
}

}  // namespace plugin
}  // namespace hotswap

/// The metadata note, for plugins that write their descriptor by hand (HOTSWAP_PLUGIN emits it).
/// The strings must fit HOTSWAP_PLUGIN_TEXT_MAX - 1 bytes; flags: 0 or HOTSWAP_PLUGIN_UNLOAD_SAFE.
#define HOTSWAP_PLUGIN_METADATA(interface_name, interface_version, module_name, build_version, flags)             \
  static_assert(::hotswap::plugin::text_length(interface_name) < HOTSWAP_PLUGIN_TEXT_MAX &&                         \
                    ::hotswap::plugin::text_length(module_name) < HOTSWAP_PLUGIN_TEXT_MAX &&                        \
                    ::hotswap::plugin::text_length(build_version) < HOTSWAP_PLUGIN_TEXT_MAX,                        \
                "hotswap plugin metadata strings must be shorter than HOTSWAP_PLUGIN_TEXT_MAX bytes");             \
  [[gnu::used, gnu::section(".note.hotswap"), gnu::aligned(4)]] static constexpr hotswap_plugin_note                \
      hotswap_plugin_note_ = ::hotswap::plugin::make_note(interface_name, interface_version, module_name,          \
                                                          build_version, flags);

/// In the interface's header, at global scope: binds a C table type to its name and version.
#define HOTSWAP_DECLARE_INTERFACE(Interface, name_string, version_number) \
  template <>                                                              \
  struct hotswap::interface_traits<Interface> {                            \
    static constexpr const char* name = name_string;                       \
    static constexpr uint32_t version = version_number;                    \
  };

/// In one .cpp of the plugin, at global scope: exports the descriptor and the metadata note.
/// `table` is a `static const Interface`; the four hooks are C++ functions (see plugin::hooks),
/// the last two may be nullptr; an optional last argument gives the flags
/// (HOTSWAP_PLUGIN_UNLOAD_SAFE). (The parameters end in _fn so that a hook named like a member
/// of plugin::hooks, e.g. `startup`, or not, e.g. `start`, expands the same way.)
#define HOTSWAP_PLUGIN(Interface, module_name, build_version, table, startup_fn, shutdown_fn, migrate_fn, self_test_fn, ...) \
  HOTSWAP_PLUGIN_METADATA(::hotswap::interface_traits<Interface>::name, ::hotswap::interface_traits<Interface>::version, \
                          module_name, build_version, 0u __VA_OPT__(| (__VA_ARGS__)))                                 \
  static_assert(std::is_same_v<decltype(table), const Interface>, "the table must be a const " #Interface);        \
  extern "C" HOTSWAP_PLUGIN_EXPORT const hotswap_plugin_descriptor* hotswap_plugin_entry(void) {                  \
    using hooks_ = ::hotswap::plugin::hooks<startup_fn, shutdown_fn, migrate_fn, self_test_fn>;                               \
    static const hotswap_plugin_descriptor descriptor = {HOTSWAP_PLUGIN_ABI_VERSION,                              \
                                                         sizeof(hotswap_plugin_descriptor),                       \
                                                         ::hotswap::interface_traits<Interface>::name,            \
                                                         ::hotswap::interface_traits<Interface>::version,         \
                                                         module_name,                                             \
                                                         build_version,                                           \
                                                         &(table),                                                \
                                                         sizeof(Interface),                                       \
                                                         &hooks_::startup,                                        \
                                                         &hooks_::shutdown,                                       \
                                                         hooks_::migrate_ptr,                                     \
                                                         hooks_::self_test_ptr};                                  \
    return &descriptor;                                                                                           \
  }

#endif /* __cplusplus */
#endif /* HOTSWAP_MODULE_PLUGIN_H */
