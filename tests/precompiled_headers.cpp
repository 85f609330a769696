// The one source of zpage_test_pch, a target that exists only to build the tests' precompiled
// header (tests/CMakeLists.txt); it compiles to nothing.
