# hotswap_add_plugin(<target> SOURCES <src>... [OUTPUT_DIRECTORY <dir>]
#                    [LINK_LIBRARIES <lib>...] [GNU_UNIQUE])
#
# Builds a hotswap plugin: a MODULE library named <target>.so (no "lib"
# prefix) that links hotswap::modules for plugin.h. Always:
#   -fno-gnu-unique (GCC)  Without it GCC emits inline and template static
#                          variables as STB_GNU_UNIQUE symbols, which glibc's
#                          loader treats as "never unload": dlclose() leaves the
#                          library mapped and the host quarantines every
#                          replaced version instead of unloading it. Clang never
#                          emits them. GNU_UNIQUE omits the flag (tests only).
#   hidden visibility      Only the descriptor entry point is exported, so two
#                          versions loaded side by side cannot bind to each
#                          other's symbols.
function(hotswap_add_plugin target)
  cmake_parse_arguments(P "GNU_UNIQUE" "OUTPUT_DIRECTORY" "SOURCES;LINK_LIBRARIES" ${ARGN})
  if(NOT P_SOURCES)
    message(FATAL_ERROR "hotswap_add_plugin(${target}): SOURCES is required")
  endif()
  add_library(${target} MODULE ${P_SOURCES})
  target_link_libraries(${target} PRIVATE hotswap::modules ${P_LINK_LIBRARIES})
  if(NOT P_GNU_UNIQUE)
    target_compile_options(${target} PRIVATE $<$<CXX_COMPILER_ID:GNU>:-fno-gnu-unique>)
  endif()
  set_target_properties(${target} PROPERTIES PREFIX "" SUFFIX ".so"
    CXX_VISIBILITY_PRESET hidden C_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
  if(P_OUTPUT_DIRECTORY)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${P_OUTPUT_DIRECTORY})
  endif()
endfunction()
