# cmake -P cmake/run.cmake: builds the release preset's main program and runs it.
cmake_minimum_required(VERSION 3.25)

# zpage-bench on its embedded default input, beside the kernel's zram where it can (root, an
# unused /dev/zram0; otherwise it says why and carries on), with the chart next to the build.
set(ZPAGE_MAIN_TARGET zpage-bench)
set(ZPAGE_MAIN_BINARY "build/release/benchmarks/${ZPAGE_MAIN_TARGET}")
set(ZPAGE_MAIN_ARGS --kernel=auto --plot build/zpage-bench.svg)

include("${CMAKE_CURRENT_LIST_DIR}/Prerequisites.cmake")
get_filename_component(source_dir "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
cmake_host_system_information(RESULT jobs QUERY NUMBER_OF_LOGICAL_CORES)

function(run)
    execute_process(COMMAND ${ARGN} WORKING_DIRECTORY "${source_dir}" RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
        list(JOIN ARGN " " command)
        message(FATAL_ERROR "failed (${rc}): ${command}")
    endif()
endfunction()
run("${CMAKE_COMMAND}" --preset release)
run("${CMAKE_COMMAND}" --build --preset release --target ${ZPAGE_MAIN_TARGET} --parallel ${jobs})

execute_process(COMMAND "${source_dir}/${ZPAGE_MAIN_BINARY}" ${ZPAGE_MAIN_ARGS} WORKING_DIRECTORY "${source_dir}" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
    # cmake_language(EXIT) (CMake 3.29+) forwards the exact code; older CMake can only exit with 1.
    if(CMAKE_VERSION VERSION_GREATER_EQUAL 3.29 AND rc MATCHES "^[0-9]+$")
        cmake_language(EXIT ${rc})
    endif()
    message(FATAL_ERROR "${ZPAGE_MAIN_TARGET} exited with ${rc}")
endif()
