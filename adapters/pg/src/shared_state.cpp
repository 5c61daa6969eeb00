// shared_state: the container table and the per-backend table in shared memory.
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "shared_state.hpp"

extern "C" {
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/backendid.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"
}

namespace hotswap::pg::shared {

namespace {

constexpr std::size_t sha_size = 65;

struct container_row {
  bool used;
  char name[name_size];
  char file[MAXPGPATH];
  char sha256[sha_size];
  char build[name_size];
  std::uint64_t version;
  TimestampTz since;
};

struct backend_cell {
  std::uint64_t version;
  std::uint64_t refused;
  TimestampTz since;
};

struct backend_row {
  int pid;
  backend_cell cells[max_containers];
};

struct header {
  LWLock* lock;
  pg_atomic_uint64 generation;
  int backend_count;
  container_row containers[max_containers];
  // backend_row rows[backend_count] follow
};

header* memory = nullptr;

backend_row* rows() { return reinterpret_cast<backend_row*>(memory + 1); }

Size memory_size() { return add_size(sizeof(header), mul_size(static_cast<Size>(MaxBackends), sizeof(backend_row))); }

void copy(char* to, std::size_t size, const std::string& from) { strlcpy(to, from.c_str(), size); }

container_entry entry_of(int i) {
  const container_row& r = memory->containers[i];
  return {i, r.name, r.file, r.sha256, r.build, r.version, r.since};
}

backend_row* my_row() {
  if (MyBackendId == InvalidBackendId || MyBackendId > memory->backend_count) return nullptr;
  return &rows()[MyBackendId - 1];
}

class locked {
 public:
  explicit locked(LWLockMode mode) { LWLockAcquire(memory->lock, mode); }
  ~locked() { LWLockRelease(memory->lock); }
  locked(const locked&) = delete;
  locked& operator=(const locked&) = delete;
};

}  // namespace

void request_memory() {
  RequestAddinShmemSpace(memory_size());
  RequestNamedLWLockTranche("hotswap_pg", 1);
}

void attach_memory() {
  LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
  bool found = false;
  memory = static_cast<header*>(ShmemInitStruct("hotswap_pg", memory_size(), &found));
  if (!found) {
    std::memset(static_cast<void*>(memory), 0, memory_size());
    memory->lock = &(GetNamedLWLockTranche("hotswap_pg"))->lock;
    pg_atomic_init_u64(&memory->generation, 1);
    memory->backend_count = MaxBackends;
  }
  LWLockRelease(AddinShmemInitLock);
}

// No barrier of its own: a backend that sees a new value reads the table under the lock,
// whose acquisition orders that read after publish()'s writes (released under the same lock).
std::uint64_t generation() { return pg_atomic_read_u64(&memory->generation); }

bool find(const std::string& name, container_entry* out) {
  locked lock(LW_SHARED);
  for (int i = 0; i < max_containers; ++i)
    if (memory->containers[i].used && name == memory->containers[i].name) {
      *out = entry_of(i);
      return true;
    }
  return false;
}

bool find(int index, container_entry* out) {
  if (index < 0 || index >= max_containers) return false;
  locked lock(LW_SHARED);
  if (!memory->containers[index].used) return false;
  *out = entry_of(index);
  return true;
}

container_entry publish(const std::string& name, const std::string& file, const std::string& sha256,
                        const std::string& build) {
  locked lock(LW_EXCLUSIVE);
  int slot = -1;
  for (int i = 0; i < max_containers && slot < 0; ++i)
    if (memory->containers[i].used && name == memory->containers[i].name) slot = i;
  for (int i = 0; i < max_containers && slot < 0; ++i)
    if (!memory->containers[i].used) {
      slot = i;
      container_row& r = memory->containers[i];
      std::memset(static_cast<void*>(&r), 0, sizeof r);
      r.used = true;
      copy(r.name, sizeof r.name, name);
    }
  if (slot < 0) throw std::length_error("hotswap_pg: the container table is full (" + std::to_string(max_containers) + ")");
  container_row& r = memory->containers[slot];
  copy(r.file, sizeof r.file, file);
  copy(r.sha256, sizeof r.sha256, sha256);
  copy(r.build, sizeof r.build, build);
  ++r.version;
  r.since = GetCurrentTimestamp();
  // Full barrier (pg_atomic_fetch_add); pairs with the lock taken by readers that see the new value.
  pg_atomic_fetch_add_u64(&memory->generation, 1);
  return entry_of(slot);
}

void backend_attach() {
  backend_row* row = my_row();
  if (row == nullptr) return;
  locked lock(LW_EXCLUSIVE);
  std::memset(static_cast<void*>(row), 0, sizeof *row);
  row->pid = MyProcPid;
}

void backend_detach() {
  backend_row* row = my_row();
  if (row == nullptr || memory == nullptr) return;
  locked lock(LW_EXCLUSIVE);
  row->pid = 0;
}

void backend_record(int container, std::uint64_t version, std::uint64_t refused) {
  backend_row* row = my_row();
  if (row == nullptr || container < 0 || container >= max_containers) return;
  locked lock(LW_EXCLUSIVE);
  backend_cell& c = row->cells[container];
  if (c.version != version) c.since = GetCurrentTimestamp();
  c.version = version;
  c.refused = refused;
}

std::vector<backend_version> versions() {
  std::vector<backend_version> out;
  locked lock(LW_SHARED);
  for (int b = 0; b < memory->backend_count; ++b) {
    const backend_row& row = rows()[b];
    if (row.pid == 0) continue;
    for (int i = 0; i < max_containers; ++i)
      if (row.cells[i].version != 0 && memory->containers[i].used)
        out.push_back({row.pid, memory->containers[i].name, row.cells[i].version, row.cells[i].refused, row.cells[i].since});
  }
  return out;
}

std::vector<container_entry> containers() {
  std::vector<container_entry> out;
  locked lock(LW_SHARED);
  for (int i = 0; i < max_containers; ++i)
    if (memory->containers[i].used) out.push_back(entry_of(i));
  return out;
}

swap_counts count(int container, std::uint64_t version) {
  swap_counts out;
  if (container < 0 || container >= max_containers) return out;
  locked lock(LW_SHARED);
  for (int b = 0; b < memory->backend_count; ++b) {
    const backend_row& row = rows()[b];
    if (row.pid == 0 || row.pid == MyProcPid || row.cells[container].version == 0) continue;
    if (row.cells[container].version == version)
      ++out.moved;
    else if (row.cells[container].refused == version)
      ++out.refused;
    else
      ++out.pending;
  }
  return out;
}

}  // namespace hotswap::pg::shared
