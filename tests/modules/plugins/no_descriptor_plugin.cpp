// A shared object that is a fine ELF file but exports no hotswap_plugin_entry.
#include <hotswap/module/plugin.h>

// Metadata that fits, so that the descriptor check is what refuses it.
HOTSWAP_PLUGIN_METADATA("hotswap.test", 1, "test-plugin", "v0", HOTSWAP_PLUGIN_UNLOAD_SAFE)

extern "C" HOTSWAP_PLUGIN_EXPORT int not_a_plugin(int x) { return x + 1; }
