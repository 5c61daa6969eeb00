// What every backend of the cluster sees: the containers and who runs which version.
//
// Why shared memory (and so shared_preload_libraries): a backend must learn of
// a swap at its next transaction start without a query, and the cluster must
// see which version each backend runs (hotswap.versions, the swap's moved /
// refused / pending counts). A generation counter in shared memory costs one
// atomic load per transaction; a catalog table plus invalidation would cost a
// catalog read per move and could not show other backends' state; NOTIFY
// reaches only sessions that LISTEN and is delivered between transactions by
// the client's own read loop. Shared memory is reserved only at postmaster
// start, hence shared_preload_libraries.
//
// One LWLock guards the container table and the per-backend table; the
// generation is bumped after the table is written (under the lock), and a
// backend that sees a new generation reads the table under the lock.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

extern "C" {
#include "postgres.h"
#include "datatype/timestamp.h"
}

namespace hotswap::pg::shared {

constexpr int max_containers = 16;
constexpr std::size_t name_size = 64;

/// One container, cluster-wide: the version every backend should run.
struct container_entry {
  int index = -1;
  std::string name;
  std::string file;
  std::string sha256;
  std::string build;
  std::uint64_t version = 0;  ///< 1 = first load; +1 per swap
  TimestampTz since = 0;
};

/// One backend's version of one container.
struct backend_version {
  int pid = 0;
  std::string container;
  std::uint64_t version = 0;
  std::uint64_t refused = 0;  ///< newest version whose startup failed in that backend
  TimestampTz since = 0;
};

struct swap_counts {
  int moved = 0, refused = 0, pending = 0;
};

void request_memory();  ///< from shmem_request_hook
void attach_memory();   ///< from shmem_startup_hook

std::uint64_t generation();
/// The container named `name`, or false.
bool find(const std::string& name, container_entry* out);
bool find(int index, container_entry* out);
/// Publishes `file` as the next version of `name` (creating it); returns the
/// new entry. Throws std::length_error when the table is full.
container_entry publish(const std::string& name, const std::string& file, const std::string& sha256,
                        const std::string& build);

/// This backend's row: claimed at first use, cleared at exit.
void backend_attach();
void backend_detach();
void backend_record(int container, std::uint64_t version, std::uint64_t refused);
std::vector<backend_version> versions();
std::vector<container_entry> containers();
/// Other backends that run `container`: on `version`, refused it, or not there yet.
swap_counts count(int container, std::uint64_t version);

}  // namespace hotswap::pg::shared
