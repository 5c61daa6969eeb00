# Module benchmark: swap latency, drain-to-unload, sustained swaps under load,
# and the cost of a call into a plugin through a slot. Included from
# bench/CMakeLists.txt; self-contained: defines hotswap-bench-module and the two
# plugin builds it swaps between (both from module_bench.cpp).
find_package(benchmark REQUIRED)

set(hotswap_bench_module_src ${CMAKE_CURRENT_LIST_DIR}/module_bench.cpp)
set(hotswap_bench_module_plugins ${CMAKE_CURRENT_BINARY_DIR}/module-bench-plugins)

foreach(v 1 2)
  set(t hotswap-bench-module-plugin-v${v})
  hotswap_add_plugin(${t} SOURCES ${hotswap_bench_module_src} OUTPUT_DIRECTORY ${hotswap_bench_module_plugins})
  target_compile_definitions(${t} PRIVATE HOTSWAP_BENCH_PLUGIN BENCH_PLUGIN_VERSION=${v})
  set_target_properties(${t} PROPERTIES OUTPUT_NAME bench_plugin_v${v})
  if(TARGET hotswap_warnings)
    target_link_libraries(${t} PRIVATE hotswap_warnings)
  endif()
endforeach()

add_executable(hotswap-bench-module ${hotswap_bench_module_src})
target_compile_definitions(hotswap-bench-module PRIVATE HOTSWAP_BENCH_PLUGIN_DIR="${hotswap_bench_module_plugins}")
target_link_libraries(hotswap-bench-module PRIVATE hotswap::modules benchmark::benchmark)
if(TARGET hotswap_warnings)
  target_link_libraries(hotswap-bench-module PRIVATE hotswap_warnings)
endif()
add_dependencies(hotswap-bench-module hotswap-bench-module-plugin-v1 hotswap-bench-module-plugin-v2)
