// The lock the module loader holds around every dlopen and dlclose it makes
// (its own loads, and the unload workers' dlclose and NOLOAD probe). A host
// that fork()s a child which will itself dlopen holds it across fork(): the
// child then starts with ld.so idle, never with ld.so's lock owned by an
// unload worker the child does not have.
//
//   std::unique_lock dl = hotswap::modules::lock_dynamic_loader();
//   const pid_t pid = ::fork();
//   dl.unlock();  // in both processes (the child's copy of the mutex is its own)
#pragma once

#include <mutex>

#include "detail/dl_state.hpp"

namespace hotswap::modules {

/// Holds the loader's dlopen/dlclose lock until the returned lock goes.
[[nodiscard]] inline std::unique_lock<std::mutex> lock_dynamic_loader() { return std::unique_lock(detail::dl_mutex()); }

}  // namespace hotswap::modules
