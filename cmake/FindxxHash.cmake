# FindxxHash: the xxHash library (XXH3 checksums and dedup hashes).
#
# Defines the imported target xxHash::xxhash and xxHash_FOUND, xxHash_VERSION, xxHash_INCLUDE_DIR,
# xxHash_LIBRARY. pkg-config (libxxhash.pc) is preferred; find_path/find_library run in every case
# so systems without a .pc file still work.
include(FindPackageHandleStandardArgs)

find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
    pkg_check_modules(PC_xxHash QUIET IMPORTED_TARGET libxxhash)
endif()

find_path(xxHash_INCLUDE_DIR NAMES xxhash.h HINTS ${PC_xxHash_INCLUDE_DIRS})
find_library(xxHash_LIBRARY NAMES xxhash libxxhash HINTS ${PC_xxHash_LIBRARY_DIRS})

if(PC_xxHash_VERSION)
    set(xxHash_VERSION "${PC_xxHash_VERSION}")
elseif(xxHash_INCLUDE_DIR AND EXISTS "${xxHash_INCLUDE_DIR}/xxhash.h")
    file(STRINGS "${xxHash_INCLUDE_DIR}/xxhash.h" _xxh_defines
         REGEX "^#[ \t]*define XXH_VERSION_(MAJOR|MINOR|RELEASE) ")
    foreach(_part MAJOR MINOR RELEASE)
        string(REGEX REPLACE ".*XXH_VERSION_${_part} +([0-9]+).*" "\\1" _xxh_${_part} "${_xxh_defines}")
    endforeach()
    set(xxHash_VERSION "${_xxh_MAJOR}.${_xxh_MINOR}.${_xxh_RELEASE}")
endif()

find_package_handle_standard_args(xxHash REQUIRED_VARS xxHash_LIBRARY xxHash_INCLUDE_DIR
                                  VERSION_VAR xxHash_VERSION)
mark_as_advanced(xxHash_INCLUDE_DIR xxHash_LIBRARY)

if(xxHash_FOUND AND NOT TARGET xxHash::xxhash)
    if(TARGET PkgConfig::PC_xxHash)
        add_library(xxHash::xxhash INTERFACE IMPORTED)
        target_link_libraries(xxHash::xxhash INTERFACE PkgConfig::PC_xxHash)
    else()
        add_library(xxHash::xxhash UNKNOWN IMPORTED)
        set_target_properties(xxHash::xxhash PROPERTIES IMPORTED_LOCATION "${xxHash_LIBRARY}"
                                                        INTERFACE_INCLUDE_DIRECTORIES "${xxHash_INCLUDE_DIR}")
    endif()
endif()
