// A shared object that is a fine ELF file but exports no hotswap_plugin_entry.
#include <hotswap/module/plugin.h>

extern "C" HOTSWAP_PLUGIN_EXPORT int not_a_plugin(int x) { return x + 1; }
