# Installs the kernel into a scratch prefix, then builds and runs the consumer
# twice: once through find_package(hotswap), once through add_subdirectory().
# Each time the consumer swaps its plugin with the preflight on (consumer/layers.cpp).
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
endfunction()

# Configured for the default prefix, installed elsewhere with --prefix (as a packager does):
# the package must find its preflight program under the prefix it is found at.
run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/kernel -DCMAKE_CXX_COMPILER=${CXX}
    -DHOTSWAP_BUILD_TESTS=OFF -DHOTSWAP_BUILD_BENCH=OFF -DHOTSWAP_BUILD_STRESS=OFF -DHOTSWAP_BUILD_ADAPTERS=OFF)
# The modules layer ships two small programs (hotswap-seal, hotswap-preflight).
run(${CMAKE_COMMAND} --build ${WORK_DIR}/kernel)
run(${CMAKE_COMMAND} --install ${WORK_DIR}/kernel --prefix ${prefix})

# The public API of each kernel layer is what its umbrella header includes,
# listed there once: hotswap/hotswap.hpp (core), hotswap/module/module.hpp
# (modules), hotswap/watch.hpp (watch). No umbrella lists a detail/ header;
# each header one lists compiles on its own from the installed prefix; and
# the consumers below include nothing of a kernel layer but those headers.
set(umbrellas hotswap/hotswap.hpp hotswap/module/module.hpp hotswap/watch.hpp)
set(public_headers ${umbrellas})
foreach(umbrella ${umbrellas})
  get_filename_component(dir ${umbrella} DIRECTORY)
  file(STRINGS ${prefix}/include/${umbrella} listed REGEX "^#include \"")
  foreach(line ${listed})
    string(REGEX REPLACE "^#include \"([^\"]+)\".*" "\\1" header "${line}")
    if(header MATCHES "(^|/)detail/")
      message(FATAL_ERROR "${umbrella} lists ${header}: a detail header is not public API")
    endif()
    list(APPEND public_headers ${dir}/${header})
    file(WRITE ${WORK_DIR}/public/${dir}/${header}.cpp "#include <${dir}/${header}>\n")
    run(${CXX} -std=c++20 -fsyntax-only -Wall -Wextra -Wpedantic -Werror -I${prefix}/include
        ${WORK_DIR}/public/${dir}/${header}.cpp)
  endforeach()
endforeach()
file(GLOB_RECURSE consumer_sources ${SOURCE_DIR}/tests/install/*.cpp ${SOURCE_DIR}/tests/install/*.h)
foreach(source ${consumer_sources})
  file(STRINGS ${source} includes REGEX "^#include <hotswap/")
  foreach(line ${includes})
    string(REGEX REPLACE "^#include <([^>]+)>.*" "\\1" header "${line}")
    list(FIND public_headers "${header}" listed_at)  # (script mode: no IN_LIST without a policy)
    if(listed_at EQUAL -1 AND NOT header MATCHES "^hotswap/(config|db|http)/")
      message(FATAL_ERROR "${source} includes <${header}>, which no umbrella (${umbrellas}) lists as public")
    endif()
  endforeach()
endforeach()
message(STATUS "each layer's public headers compile alone; consumers include only those")

run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/install/consumer -B ${WORK_DIR}/by-find-package
    -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_PREFIX_PATH=${prefix})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/by-find-package)
run(${WORK_DIR}/by-find-package/consumer)
run(${WORK_DIR}/by-find-package/consumer_layers)

run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/install/consumer -B ${WORK_DIR}/by-add-subdirectory
    -DCMAKE_CXX_COMPILER=${CXX} -DHOTSWAP_SOURCE_DIR=${SOURCE_DIR})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/by-add-subdirectory)
run(${WORK_DIR}/by-add-subdirectory/consumer)
run(${WORK_DIR}/by-add-subdirectory/consumer_layers)
message(STATUS "find_package and add_subdirectory consumers built and ran")

# ---- The adapters (issue 17): hotswap::config, hotswap::db, hotswap::http_app ----
# Installed into the same prefix from a build with the adapters on (only the
# installed libraries are built), then a consumer of each, both ways.
find_program(CCACHE ccache)
if(CCACHE)
  set(launcher -DCMAKE_CXX_COMPILER_LAUNCHER=${CCACHE})
endif()
run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/adapters -DCMAKE_CXX_COMPILER=${CXX} ${launcher}
    -DHOTSWAP_BUILD_TESTS=OFF -DHOTSWAP_BUILD_BENCH=OFF -DHOTSWAP_BUILD_STRESS=OFF -DHOTSWAP_BUILD_ADAPTERS=ON
    -DCMAKE_INSTALL_PREFIX=${prefix})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/adapters --target hotswap_config hotswap_db)
run(${CMAKE_COMMAND} --install ${WORK_DIR}/adapters --component hotswap_adapters)
foreach(how find-package add-subdirectory)
  if(how STREQUAL "find-package")
    set(where -DCMAKE_PREFIX_PATH=${prefix})
  else()
    set(where -DHOTSWAP_SOURCE_DIR=${SOURCE_DIR})
  endif()
  run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/install/adapters_consumer -B ${WORK_DIR}/adapters-by-${how}
      -DCMAKE_CXX_COMPILER=${CXX} ${launcher} ${where})
  run(${CMAKE_COMMAND} --build ${WORK_DIR}/adapters-by-${how})
  foreach(user config_user db_user app_user)
    run(${WORK_DIR}/adapters-by-${how}/${user})
  endforeach()
endforeach()
message(STATUS "adapter consumers (config, db, http_app) built and ran both ways")
