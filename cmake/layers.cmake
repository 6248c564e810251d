# The compiler's half of the layering (DESIGN.md "Layers"; issue #19): a target's include path
# shows its own folder only, so a file sees the headers of what its target links (CMake hands a
# library's include path to whoever links it) and nothing else: an include of a folder the target
# does not link fails to compile. Spellings stay as they are ("replay/chains.h"): each folder is
# shown through a directory of the build tree that holds that folder alone, by symbolic links
# (build/layers/<folder>/<folder> -> the sources).
#
#   es_layer_includes(TARGET [PRIVATE])
#
# TARGET must be in a row of cmake/layers.txt (its folder comes from there). The ABI
# (probes/include) is on es_probe_abi's path as it always was. tests/layering/check_includes.sh
# checks the rest (which folders a layer may link at all, cycles, link lists).
file(STRINGS ${PROJECT_SOURCE_DIR}/cmake/layers.txt _es_layer_rows)
set(ES_LAYER_FOLDERS "")
foreach(_row IN LISTS _es_layer_rows)
  string(REGEX REPLACE "#.*" "" _row "${_row}")
  string(FIND "${_row}" "|" _bar)
  if(_bar LESS 0)
    continue()
  endif()
  string(SUBSTRING "${_row}" 0 ${_bar} _left)
  separate_arguments(_left UNIX_COMMAND "${_left}")
  list(POP_FRONT _left _folder)
  if(_folder STREQUAL "*" OR NOT _left)
    continue()
  endif()
  list(APPEND ES_LAYER_FOLDERS ${_folder})
  foreach(_t IN LISTS _left)
    set(ES_LAYER_OF_${_t} ${_folder})
  endforeach()
endforeach()
set_property(DIRECTORY ${PROJECT_SOURCE_DIR} APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/cmake/layers.txt)

# _es_layer_mirror(SRC DST FOLDER): DST shows the files of SRC (the sources of FOLDER) and its
# subfolders, except those that are layers of their own. A folder without such a subfolder is
# one link; otherwise each file is a link, globbed with CONFIGURE_DEPENDS so that a new header
# re-runs CMake.
function(_es_layer_mirror src dst folder)
  set(inner "")
  foreach(f IN LISTS ES_LAYER_FOLDERS)
    string(FIND "${f}" "${folder}/" at)
    if(at EQUAL 0)
      list(APPEND inner ${f})
    endif()
  endforeach()
  if(NOT inner)
    get_filename_component(parent ${dst} DIRECTORY)
    file(MAKE_DIRECTORY ${parent})
    file(CREATE_LINK ${src} ${dst} SYMBOLIC)
    return()
  endif()
  file(MAKE_DIRECTORY ${dst})
  file(GLOB entries LIST_DIRECTORIES true CONFIGURE_DEPENDS ${src}/*)
  foreach(e IN LISTS entries)
    get_filename_component(name ${e} NAME)
    if(IS_DIRECTORY ${e})
      if(NOT "${folder}/${name}" IN_LIST ES_LAYER_FOLDERS)
        _es_layer_mirror(${e} ${dst}/${name} ${folder}/${name})
      endif()
    else()
      file(CREATE_LINK ${e} ${dst}/${name} SYMBOLIC)
    endif()
  endforeach()
endfunction()

function(es_layer_includes target)
  set(scope PUBLIC)
  if(ARGC GREATER 1)
    set(scope ${ARGV1})
  endif()
  set(folder "${ES_LAYER_OF_${target}}")
  if(NOT folder)
    message(FATAL_ERROR "es_layer_includes: target ${target} is in no row of cmake/layers.txt; "
                        "add it to the row of its folder.")
  endif()
  string(REPLACE "/" "+" slug ${folder})
  set(view ${PROJECT_BINARY_DIR}/layers/${slug})
  get_property(done GLOBAL PROPERTY ES_LAYER_VIEW_${slug})
  if(NOT done)
    file(REMOVE_RECURSE ${view})
    _es_layer_mirror(${PROJECT_SOURCE_DIR}/${folder} ${view}/${folder} ${folder})
    set_property(GLOBAL PROPERTY ES_LAYER_VIEW_${slug} TRUE)
  endif()
  target_include_directories(${target} ${scope} ${view})
endfunction()
