# Module benchmark: swap latency, drain-to-unload, sustained swaps under load,
# and the cost of a call into a plugin through a slot. Included from
# bench/CMakeLists.txt; self-contained: defines hotswap-bench-module and the two
# plugin builds it swaps between (both from module_bench.cpp).
find_package(benchmark REQUIRED)

set(hotswap_bench_module_src ${CMAKE_CURRENT_LIST_DIR}/module_bench.cpp)
set(hotswap_bench_module_plugins ${CMAKE_CURRENT_BINARY_DIR}/module-bench-plugins)

foreach(v 1 2)
  set(t hotswap-bench-module-plugin-v${v})
  add_library(${t} MODULE ${hotswap_bench_module_src})
  target_compile_definitions(${t} PRIVATE HOTSWAP_BENCH_PLUGIN BENCH_PLUGIN_VERSION=${v})
  target_link_libraries(${t} PRIVATE hotswap::kernel)
  # GCC's GNU unique symbols would make dlclose a no-op (see tests/modules/CMakeLists.txt).
  target_compile_options(${t} PRIVATE $<$<CXX_COMPILER_ID:GNU>:-fno-gnu-unique>)
  set_target_properties(${t} PROPERTIES PREFIX "" SUFFIX ".so" OUTPUT_NAME bench_plugin_v${v}
    LIBRARY_OUTPUT_DIRECTORY ${hotswap_bench_module_plugins}
    CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
  if(TARGET hotswap_warnings)
    target_link_libraries(${t} PRIVATE hotswap_warnings)
  endif()
endforeach()

add_executable(hotswap-bench-module ${hotswap_bench_module_src})
target_compile_definitions(hotswap-bench-module PRIVATE HOTSWAP_BENCH_PLUGIN_DIR="${hotswap_bench_module_plugins}")
target_link_libraries(hotswap-bench-module PRIVATE hotswap::kernel benchmark::benchmark)
if(TARGET hotswap_warnings)
  target_link_libraries(hotswap-bench-module PRIVATE hotswap_warnings)
endif()
add_dependencies(hotswap-bench-module hotswap-bench-module-plugin-v1 hotswap-bench-module-plugin-v2)
