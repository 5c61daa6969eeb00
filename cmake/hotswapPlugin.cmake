# hotswap_add_plugin(<target> SOURCES <src>... [OUTPUT_DIRECTORY <dir>]
#                    [LINK_LIBRARIES <lib>...] [GNU_UNIQUE] [UNSEALED])
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
#   sealed                 hotswap-seal writes the SHA-256 of the finished file
#                          into its metadata note (plugin.h) after linking; the
#                          host refuses a file whose bytes do not match (an
#                          upload caught half-way). Anything that rewrites the
#                          file later (strip, objcopy) must be followed by
#                          hotswap-seal again. UNSEALED skips it (tests only).
function(hotswap_add_plugin target)
  cmake_parse_arguments(P "GNU_UNIQUE;UNSEALED" "OUTPUT_DIRECTORY" "SOURCES;LINK_LIBRARIES" ${ARGN})
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
  if(NOT P_UNSEALED)
    add_custom_command(TARGET ${target} POST_BUILD COMMAND $<TARGET_FILE:hotswap::seal> $<TARGET_FILE:${target}>
                       COMMENT "Sealing hotswap plugin ${target}" VERBATIM)
  endif()
  if(P_OUTPUT_DIRECTORY)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${P_OUTPUT_DIRECTORY})
  endif()
endfunction()
