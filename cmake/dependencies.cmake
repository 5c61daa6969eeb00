# Third-party libraries, all from Debian 12 packages (scripts/setup.sh installs
# them). Each is looked for only when something that is being built needs it:
# a consumer with tests, benchmarks and the rig off needs none of them.

if(HOTSWAP_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(HOTSWAP_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()

if(HOTSWAP_BUILD_TESTS OR HOTSWAP_BUILD_BENCH OR HOTSWAP_BUILD_STRESS)
  # libcds: Debian's LibCDSConfig.cmake names ${prefix}/lib64/libcds.so.2.3.3,
  # but the package installs it under lib/x86_64-linux-gnu, so
  # find_package(LibCDS) yields a target whose file does not exist. Locate the
  # library directly.
  find_path(CDS_INCLUDE_DIR cds/init.h REQUIRED)
  find_library(CDS_LIBRARY NAMES cds REQUIRED)
  add_library(hotswap_cds INTERFACE)
  target_include_directories(hotswap_cds SYSTEM INTERFACE ${CDS_INCLUDE_DIR})
  target_link_libraries(hotswap_cds INTERFACE ${CDS_LIBRARY})

  # The policies tests, benchmarks and the rig run against: the shipped one
  # and the test-only references (tests/policies; never installed).
  add_library(hotswap_policies INTERFACE)
  target_include_directories(hotswap_policies INTERFACE ${PROJECT_SOURCE_DIR}/tests/policies)
  target_link_libraries(hotswap_policies INTERFACE hotswap::core hotswap_cds)
endif()

if(HOTSWAP_BUILD_BENCH OR HOTSWAP_BUILD_STRESS)
  # liburcu (memb flavour), a benchmark and stress baseline only.
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(URCU_MEMB REQUIRED IMPORTED_TARGET liburcu-memb)
endif()

if(HOTSWAP_BUILD_STRESS OR HOTSWAP_BUILD_ADAPTERS)
  find_package(CLI11 2.1 REQUIRED CONFIG)   # the command lines of hotswap-stress, -httpd and -config
endif()
if(HOTSWAP_BUILD_STRESS)
  find_package(nlohmann_json 3 REQUIRED)    # hotswap-stress's JSON report
endif()
