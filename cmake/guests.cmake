# es_add_guest_blobs(TARGET <lib> NAMESPACE <ns> SOURCES a.asm b.asm ...)
# Assembles each .asm with nasm into a flat binary (-f bin) under the build tree and
# embeds it in a static library as `extern const unsigned char <ns>_<name>[]` plus
# `<ns>_<name>_size`, declared in the generated header <lib>.h (include dir added).
function(es_add_guest_blobs)
  cmake_parse_arguments(G "" "TARGET;NAMESPACE" "SOURCES" ${ARGN})
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/${G_TARGET})
  file(MAKE_DIRECTORY ${out_dir})
  set(header ${out_dir}/${G_TARGET}.h)
  set(decls "")
  set(cpp_files "")
  foreach(src ${G_SOURCES})
    get_filename_component(name ${src} NAME_WE)
    string(MAKE_C_IDENTIFIER ${name} ident)
    get_filename_component(abs ${src} ABSOLUTE)
    set(bin ${out_dir}/${name}.bin)
    set(cpp ${out_dir}/${name}.cpp)
    add_custom_command(OUTPUT ${bin}
      COMMAND ${NASM_EXECUTABLE} -f bin -w+all -I${CMAKE_CURRENT_SOURCE_DIR}/ -o ${bin} ${abs}
      DEPENDS ${abs}
      COMMENT "nasm ${name}.asm"
      VERBATIM)
    add_custom_command(OUTPUT ${cpp}
      COMMAND ${CMAKE_COMMAND} -DIN=${bin} -DOUT=${cpp} -DSYM=${G_NAMESPACE}_${ident}
              -P ${PROJECT_SOURCE_DIR}/cmake/embed.cmake
      DEPENDS ${bin} ${PROJECT_SOURCE_DIR}/cmake/embed.cmake
      VERBATIM)
    list(APPEND cpp_files ${cpp})
    string(APPEND decls "extern const unsigned char ${G_NAMESPACE}_${ident}[];\nextern const unsigned long ${G_NAMESPACE}_${ident}_size;\n")
  endforeach()
  file(GENERATE OUTPUT ${header} CONTENT "#pragma once\n${decls}")
  add_library(${G_TARGET} STATIC ${cpp_files})
  target_include_directories(${G_TARGET} PUBLIC ${out_dir})
endfunction()
