// hotswap watch: report changed files in a directory, once each, by content.
// The watch layer's public API is the headers this one includes, and only
// those (the packaging test and the layer-boundary test hold the tree to it):
//   watch/watcher.hpp        the watcher: inotify or polling, debounce, a callback per change
//   watch/watch_options.hpp  what a watcher reports (file_change) and the options it takes
//   watch/xxh64.hpp          the content hash a file_change carries (equals `xxhsum -H1`)
// Internals are hotswap::watch::detail, declared only under watch/detail/.
#pragma once

#include "watch/watch_options.hpp"
#include "watch/watcher.hpp"
#include "watch/xxh64.hpp"
