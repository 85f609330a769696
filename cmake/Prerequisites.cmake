# Included by cmake/test.cmake and cmake/run.cmake: makes sure the Debian packages zpage's build needs
# are installed. As root it installs what is missing; otherwise it prints the command and stops.
#
# make is not a zpage dependency but the default CMake generator's, and minimal images lack it.
set(ZPAGE_DEBIAN_PACKAGES g++ make pkg-config liblz4-dev libzstd-dev libxxhash-dev libboost-dev doctest-dev
                          libbenchmark-dev)
# The test suite's real memcached clients (zpage-memcached's tests): set by cmake/test.cmake.
list(APPEND ZPAGE_DEBIAN_PACKAGES ${ZPAGE_TEST_PACKAGES})

function(zpage_ensure_packages)
    find_program(_dpkg_query dpkg-query)
    if(NOT _dpkg_query)
        message(STATUS "dpkg-query not found: not Debian, so install by hand: ${ZPAGE_DEBIAN_PACKAGES}")
        return()
    endif()

    set(missing "")
    foreach(pkg IN LISTS ZPAGE_DEBIAN_PACKAGES)
        execute_process(COMMAND "${_dpkg_query}" -W "-f=\${Status}" ${pkg}
                        OUTPUT_VARIABLE status ERROR_QUIET RESULT_VARIABLE rc)
        if(NOT rc EQUAL 0 OR NOT status MATCHES "install ok installed")
            list(APPEND missing ${pkg})
        endif()
    endforeach()
    if(NOT missing)
        return()
    endif()
    list(JOIN missing " " missing_text)

    execute_process(COMMAND id -u OUTPUT_VARIABLE uid OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(NOT uid STREQUAL "0")
        message(FATAL_ERROR "Missing Debian packages. Install them with:\n  sudo apt-get install -y ${missing_text}\n")
    endif()

    message(STATUS "Installing missing Debian packages: ${missing_text}")
    set(apt "${CMAKE_COMMAND}" -E env DEBIAN_FRONTEND=noninteractive apt-get)
    execute_process(COMMAND ${apt} install -y --no-install-recommends ${missing} RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)  # usually stale or absent package lists (fresh containers ship none)
        execute_process(COMMAND ${apt} update RESULT_VARIABLE rc)
        execute_process(COMMAND ${apt} install -y --no-install-recommends ${missing} RESULT_VARIABLE rc)
        if(NOT rc EQUAL 0)
            message(FATAL_ERROR "apt-get install -y --no-install-recommends ${missing_text} failed (${rc})")
        endif()
    endif()
endfunction()

zpage_ensure_packages()
