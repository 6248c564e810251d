# BPF programs: clang -target bpf, then a bpftool-generated skeleton header.
#
#   es_bpf_skeleton(TARGET kvm_bpf_skel SOURCE probes/kvm/kvm.bpf.c NAME kvm_bpf)
#
# defines an INTERFACE target whose include directory holds <stem>.skel.h (here
# probes/kvm/kvm.skel.h under the build tree, included as "probes/kvm/kvm.skel.h"). The object
# is embedded in the header, so nothing is installed beside the binary.
#
# Every header the program includes (exitscope/record.h, kvm_event.h, ...) is a dependency of
# the object through clang's depfile (-MD, DEPFILE), which Ninja and Makefiles both read:
# IMPLICIT_DEPENDS, used before, is honoured by Makefiles only, so under Ninja a change of
# record.h left a stale .bpf.o (issue #19).
find_program(ES_CLANG clang REQUIRED)
find_program(ES_BPFTOOL bpftool PATHS /usr/sbin /sbin REQUIRED)
pkg_check_modules(LIBBPF REQUIRED IMPORTED_TARGET GLOBAL libbpf)

# Debian keeps asm/types.h (needed by linux/types.h) under the multiarch directory.
execute_process(COMMAND ${CMAKE_C_COMPILER} -print-multiarch OUTPUT_VARIABLE ES_MULTIARCH
                OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT ES_MULTIARCH)
  set(ES_MULTIARCH x86_64-linux-gnu)
endif()

function(es_bpf_skeleton)
  cmake_parse_arguments(A "" "TARGET;SOURCE;NAME" "DEPENDS" ${ARGN})
  get_filename_component(src ${A_SOURCE} ABSOLUTE)
  file(RELATIVE_PATH rel ${PROJECT_SOURCE_DIR} ${src})
  get_filename_component(rel_dir ${rel} DIRECTORY)
  get_filename_component(stem ${src} NAME_WE)  # kvm.bpf.c -> kvm
  # The program sees what its folder's C++ sees (cmake/layers.cmake): its own folder through the
  # layer view build/layers/<folder>, and the ABI headers; not the whole source tree.
  string(REPLACE "/" "+" slug "${rel_dir}")
  set(out_dir ${PROJECT_BINARY_DIR}/bpf/${rel_dir})
  set(obj ${out_dir}/${stem}.bpf.o)
  set(skel ${out_dir}/${stem}.skel.h)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}
    COMMAND ${ES_CLANG} -g -O2 -target bpf -D__TARGET_ARCH_x86 -Wall -Werror
            -I/usr/include/${ES_MULTIARCH} -I${PROJECT_BINARY_DIR}/layers/${slug} -I${PROJECT_SOURCE_DIR}/probes/include
            -MD -MF ${obj}.d -c ${src} -o ${obj}
    DEPENDS ${src} ${A_DEPENDS}
    DEPFILE ${obj}.d
    COMMENT "BPF ${rel}"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${ES_BPFTOOL} gen skeleton ${obj} name ${A_NAME} > ${skel}
    DEPENDS ${obj}
    COMMENT "bpftool skeleton ${stem}.skel.h"
    VERBATIM)
  add_custom_target(${A_TARGET}_gen DEPENDS ${skel})
  add_library(${A_TARGET} INTERFACE)
  add_dependencies(${A_TARGET} ${A_TARGET}_gen)
  target_include_directories(${A_TARGET} INTERFACE ${PROJECT_BINARY_DIR}/bpf)
  target_link_libraries(${A_TARGET} INTERFACE PkgConfig::LIBBPF)
endfunction()
