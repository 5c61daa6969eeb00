# Installs the kernel into a scratch prefix, then builds and runs the consumer
# twice: once through find_package(hotswap), once through add_subdirectory().
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
endfunction()

run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/kernel -DCMAKE_CXX_COMPILER=${CXX}
    -DHOTSWAP_BUILD_TESTS=OFF -DHOTSWAP_BUILD_BENCH=OFF -DHOTSWAP_BUILD_STRESS=OFF -DHOTSWAP_BUILD_ADAPTERS=OFF
    -DCMAKE_INSTALL_PREFIX=${prefix})
# The modules layer ships two small programs (hotswap-seal, hotswap-preflight).
run(${CMAKE_COMMAND} --build ${WORK_DIR}/kernel)
run(${CMAKE_COMMAND} --install ${WORK_DIR}/kernel)

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
