# Builds and runs tests/consumer against this zpage, as an outside project would use it.
#   cmake -DMODE=package|subdirectory -DZPAGE_SOURCE_DIR=... -DWORK_DIR=...
#         [-DGENERATOR=...] [-DCXX_COMPILER=...] [-DBUILD_TYPE=...] -P RunConsumerTest.cmake
# package:      configure ZPAGE_SOURCE_DIR afresh into WORK_DIR/zpage-build with its default options,
#               build nothing, `cmake --install` it into WORK_DIR/prefix (the usual way to install a
#               header-only library), then find_package(zpage) from there.
# subdirectory: add_subdirectory(ZPAGE_SOURCE_DIR).
foreach(_var MODE ZPAGE_SOURCE_DIR WORK_DIR)
    if(NOT ${_var})
        message(FATAL_ERROR "RunConsumerTest.cmake: ${_var} is required")
    endif()
endforeach()

function(run)
    execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc COMMAND_ECHO STDOUT)
    if(NOT rc EQUAL 0)
        list(JOIN ARGV " " command)
        message(FATAL_ERROR "consumer test (${MODE}) failed (${rc}): ${command}")
    endif()
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")  # a stale prefix or cache would hide a broken install
set(_generator_and_compiler)
if(GENERATOR)
    list(APPEND _generator_and_compiler -G "${GENERATOR}")
endif()
if(CXX_COMPILER)
    list(APPEND _generator_and_compiler "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
endif()
set(_configure -S "${ZPAGE_SOURCE_DIR}/tests/consumer" -B "${WORK_DIR}/build" "-DZPAGE_CONSUMER_MODE=${MODE}"
               -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF ${_generator_and_compiler})
if(BUILD_TYPE)
    list(APPEND _configure "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}")
    set(_config --config "${BUILD_TYPE}")
endif()

if(MODE STREQUAL "package")
    # Not the build tree ctest runs in: that one has zpage-bench built, which hid an install that
    # failed wherever nothing was built.
    run("${CMAKE_COMMAND}" -S "${ZPAGE_SOURCE_DIR}" -B "${WORK_DIR}/zpage-build" ${_generator_and_compiler})
    run("${CMAKE_COMMAND}" --install "${WORK_DIR}/zpage-build" --prefix "${WORK_DIR}/prefix" ${_config})
    # The tool is installed only when built (component "tools", optional).
    file(GLOB _installed_tools "${WORK_DIR}/prefix/bin/*")
    if(_installed_tools)
        message(FATAL_ERROR "consumer test (package): installing an unbuilt tree installed ${_installed_tools}")
    endif()
    list(APPEND _configure "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix")
elseif(MODE STREQUAL "subdirectory")
    list(APPEND _configure "-DZPAGE_SOURCE_DIR=${ZPAGE_SOURCE_DIR}")
else()
    message(FATAL_ERROR "RunConsumerTest.cmake: MODE must be package or subdirectory, not '${MODE}'")
endif()

run("${CMAKE_COMMAND}" ${_configure})
run("${CMAKE_COMMAND}" --build "${WORK_DIR}/build" ${_config})
if(EXISTS "${WORK_DIR}/build/zpage_consumer")
    run("${WORK_DIR}/build/zpage_consumer")
else()  # multi-config generators put it under the configuration's folder
    run("${WORK_DIR}/build/${BUILD_TYPE}/zpage_consumer")
endif()
