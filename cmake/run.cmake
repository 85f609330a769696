# cmake -P cmake/run.cmake: builds the release preset's main program and runs it.
cmake_minimum_required(VERSION 3.25)

# The program this command runs; it becomes zpage-bench (and its path with it) once that tool lands.
set(ZPAGE_MAIN_TARGET basic_store)
set(ZPAGE_MAIN_BINARY "build/release/examples/${ZPAGE_MAIN_TARGET}")

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

execute_process(COMMAND "${source_dir}/${ZPAGE_MAIN_BINARY}" WORKING_DIRECTORY "${source_dir}" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
    # cmake_language(EXIT) (CMake 3.29+) forwards the exact code; older CMake can only exit with 1.
    if(CMAKE_VERSION VERSION_GREATER_EQUAL 3.29 AND rc MATCHES "^[0-9]+$")
        cmake_language(EXIT ${rc})
    endif()
    message(FATAL_ERROR "${ZPAGE_MAIN_TARGET} exited with ${rc}")
endif()
