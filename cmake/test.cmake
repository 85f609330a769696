# cmake -P cmake/test.cmake: the whole test suite, as CI runs it (.ci/run).
#
# One leg per preset, stopping at the first failure:
#   release     every test, built with -Werror
#   asan-ubsan  every test except the "package" ones (they build separate, uninstrumented projects)
#   tsan        the "concurrency" tests only: TSan finds only races, and slows code 5-15x
#   fuzz        every libFuzzer target for 60 s, all at once (clang, ASan+UBSan; tests/fuzz/run_fuzzers.sh)
#
# A sanitizer leg's time is mostly its build (ASan at -O1 -g, measured on 2 cores: 1187 s of build,
# 266 s of tests), so the sanitizer presets keep -O1 but emit line tables only (-g1): a test source
# took 36 s so against 53 s, and reports keep their file:line stacks. (-Og compiled in 23 s but
# ran the ASan tests at half speed: 592 s of tests, which ate the gain.)
cmake_minimum_required(VERSION 3.25)
# zpage-memcached's tests run real clients: pymemcache (with Debian's python3) and libmemcached's tools.
# The fuzz leg needs clang and its libFuzzer runtime.
set(ZPAGE_TEST_PACKAGES python3 python3-pymemcache libmemcached-tools clang libclang-rt-14-dev)
include("${CMAKE_CURRENT_LIST_DIR}/Prerequisites.cmake")

get_filename_component(source_dir "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
cmake_host_system_information(RESULT jobs QUERY NUMBER_OF_LOGICAL_CORES)

function(run leg)
    execute_process(COMMAND ${ARGN} WORKING_DIRECTORY "${source_dir}" RESULT_VARIABLE rc COMMAND_ECHO STDOUT)
    if(NOT rc EQUAL 0)
        list(JOIN ARGN " " command)
        message(FATAL_ERROR "[${leg}] failed (${rc}): ${command}")
    endif()
endfunction()

string(TIMESTAMP suite_start "%s")
foreach(leg IN ITEMS release asan-ubsan tsan)
    string(TIMESTAMP leg_start "%s")
    message(STATUS "==== ${leg}: configure, build, test =====================================")

    set(selection "")
    if(leg STREQUAL "asan-ubsan")
        list(APPEND selection -LE package)
    elseif(leg STREQUAL "tsan")
        list(APPEND selection -L concurrency)
    endif()

    run(${leg} "${CMAKE_COMMAND}" --preset ${leg})
    set(targets "")
    if(leg STREQUAL "tsan")
        # Build only what this leg runs: TSan compiles slowly. zpage_add_test names test and target alike.
        execute_process(COMMAND "${CMAKE_CTEST_COMMAND}" --preset ${leg} ${selection} --show-only=json-v1
                        WORKING_DIRECTORY "${source_dir}" OUTPUT_VARIABLE listing COMMAND_ERROR_IS_FATAL ANY)
        string(JSON count LENGTH "${listing}" tests)
        if(count EQUAL 0)
            message(WARNING "[${leg}] no test is labelled concurrency yet: nothing to run")
            continue()
        endif()
        math(EXPR last "${count} - 1")
        set(targets --target)
        foreach(i RANGE ${last})
            string(JSON name GET "${listing}" tests ${i} name)
            if(name MATCHES "^zpage-memcached-")  # a server test: it runs clients against this target
                set(name zpage-memcached)
            endif()
            list(APPEND targets ${name})
        endforeach()
        list(REMOVE_DUPLICATES targets)
    endif()
    run(${leg} "${CMAKE_COMMAND}" --build --preset ${leg} --parallel ${jobs} ${targets})
    run(${leg} "${CMAKE_CTEST_COMMAND}" --preset ${leg} --parallel ${jobs} --no-tests=error ${selection})

    string(TIMESTAMP now "%s")
    math(EXPR seconds "${now} - ${leg_start}")
    message(STATUS "==== ${leg}: passed in ${seconds} s")
endforeach()

string(TIMESTAMP leg_start "%s")
message(STATUS "==== fuzz: every target for 60 s, all at once =====================================")
# A smoke run: the targets share the cores for one minute of wall time (run_fuzzers.sh runs as
# many at once as ZPAGE_FUZZ_JOBS says). Longer runs: tests/fuzz/run_fuzzers.sh 600.
run(fuzz "${CMAKE_COMMAND}" -E env ZPAGE_FUZZ_JOBS=64 "${source_dir}/tests/fuzz/run_fuzzers.sh" 60)
string(TIMESTAMP now "%s")
math(EXPR seconds "${now} - ${leg_start}")
message(STATUS "==== fuzz: passed in ${seconds} s")

string(TIMESTAMP now "%s")
math(EXPR seconds "${now} - ${suite_start}")
message(STATUS "==== all legs passed in ${seconds} s")
