// Schedule points: where a test harness may switch threads.
//
// In normal builds HOTSWAP_SCHEDULE_POINT expands to nothing and costs
// nothing. A test that defines HOTSWAP_SCHEDULE_HOOK before including the
// kernel provides `hotswap_schedule_point(const char*)` and gets a call at
// every step of the protocol where another thread's step could matter: the
// explorer in tests/explore/ runs one thread at a time and picks the next one
// at each point from a seeded generator (liburcu's debug-yield idea, with
// reproducible schedules).
#pragma once

#ifdef HOTSWAP_SCHEDULE_HOOK
void hotswap_schedule_point(const char* where) noexcept;
#define HOTSWAP_SCHEDULE_POINT(where) ::hotswap_schedule_point(where)
#else
#define HOTSWAP_SCHEDULE_POINT(where) static_cast<void>(0)
#endif
