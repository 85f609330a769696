# Builds and runs tests/consumer against this zpage, as an outside project would use it.
#   cmake -DMODE=package|subdirectory -DZPAGE_SOURCE_DIR=... -DZPAGE_BINARY_DIR=... -DWORK_DIR=...
#         [-DGENERATOR=...] [-DCXX_COMPILER=...] [-DBUILD_TYPE=...] -P RunConsumerTest.cmake
# package:      `cmake --install` the build tree into WORK_DIR/prefix, then find_package(zpage) from there.
# subdirectory: add_subdirectory(ZPAGE_SOURCE_DIR).
foreach(_var MODE ZPAGE_SOURCE_DIR ZPAGE_BINARY_DIR WORK_DIR)
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
set(_configure -S "${ZPAGE_SOURCE_DIR}/tests/consumer" -B "${WORK_DIR}/build" "-DZPAGE_CONSUMER_MODE=${MODE}"
               -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
if(GENERATOR)
    list(APPEND _configure -G "${GENERATOR}")
endif()
if(CXX_COMPILER)
    list(APPEND _configure "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
endif()
if(BUILD_TYPE)
    list(APPEND _configure "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}")
    set(_config --config "${BUILD_TYPE}")
endif()

if(MODE STREQUAL "package")
    run("${CMAKE_COMMAND}" --install "${ZPAGE_BINARY_DIR}" --prefix "${WORK_DIR}/prefix" ${_config})
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
