# FindLZ4: the LZ4 compression library.
#
# Defines the imported target LZ4::lz4 and LZ4_FOUND, LZ4_VERSION, LZ4_INCLUDE_DIR, LZ4_LIBRARY.
# pkg-config (liblz4.pc) is preferred because it carries the flags the distribution built with;
# find_path/find_library run in every case so systems without a .pc file still work.
include(FindPackageHandleStandardArgs)

find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
    pkg_check_modules(PC_LZ4 QUIET IMPORTED_TARGET liblz4)
endif()

find_path(LZ4_INCLUDE_DIR NAMES lz4.h HINTS ${PC_LZ4_INCLUDE_DIRS})
find_library(LZ4_LIBRARY NAMES lz4 liblz4 HINTS ${PC_LZ4_LIBRARY_DIRS})

if(PC_LZ4_VERSION)
    set(LZ4_VERSION "${PC_LZ4_VERSION}")
elseif(LZ4_INCLUDE_DIR AND EXISTS "${LZ4_INCLUDE_DIR}/lz4.h")
    file(STRINGS "${LZ4_INCLUDE_DIR}/lz4.h" _lz4_defines REGEX "^#define LZ4_VERSION_(MAJOR|MINOR|RELEASE) ")
    foreach(_part MAJOR MINOR RELEASE)
        string(REGEX REPLACE ".*LZ4_VERSION_${_part} +([0-9]+).*" "\\1" _lz4_${_part} "${_lz4_defines}")
    endforeach()
    set(LZ4_VERSION "${_lz4_MAJOR}.${_lz4_MINOR}.${_lz4_RELEASE}")
endif()

find_package_handle_standard_args(LZ4 REQUIRED_VARS LZ4_LIBRARY LZ4_INCLUDE_DIR VERSION_VAR LZ4_VERSION)
mark_as_advanced(LZ4_INCLUDE_DIR LZ4_LIBRARY)

if(LZ4_FOUND AND NOT TARGET LZ4::lz4)
    if(TARGET PkgConfig::PC_LZ4)
        add_library(LZ4::lz4 INTERFACE IMPORTED)
        target_link_libraries(LZ4::lz4 INTERFACE PkgConfig::PC_LZ4)
    else()
        add_library(LZ4::lz4 UNKNOWN IMPORTED)
        set_target_properties(LZ4::lz4 PROPERTIES IMPORTED_LOCATION "${LZ4_LIBRARY}"
                                                  INTERFACE_INCLUDE_DIRECTORIES "${LZ4_INCLUDE_DIR}")
    endif()
endif()
