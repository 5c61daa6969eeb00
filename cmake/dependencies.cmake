# Third-party libraries, all from Debian 12 packages (scripts/setup.sh installs them).

find_package(GTest REQUIRED)
find_package(benchmark REQUIRED)

# libcds: Debian's LibCDSConfig.cmake names ${prefix}/lib64/libcds.so.2.3.3, but
# the package installs it under lib/x86_64-linux-gnu, so find_package(LibCDS)
# yields a target whose file does not exist. Locate the library directly.
find_path(CDS_INCLUDE_DIR cds/init.h REQUIRED)
find_library(CDS_LIBRARY NAMES cds REQUIRED)
add_library(hotswap_cds INTERFACE)
target_include_directories(hotswap_cds SYSTEM INTERFACE ${CDS_INCLUDE_DIR})
target_link_libraries(hotswap_cds INTERFACE ${CDS_LIBRARY})

# liburcu (memb flavour), a benchmark and stress baseline only.
find_package(PkgConfig REQUIRED)
pkg_check_modules(URCU_MEMB REQUIRED IMPORTED_TARGET liburcu-memb)
