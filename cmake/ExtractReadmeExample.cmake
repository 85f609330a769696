# cmake -DREADME=<README.md> -DOUTPUT=<file.cpp> -P ExtractReadmeExample.cmake
#
# Writes the first fenced block opened by a line that is exactly ```cpp to OUTPUT, behind a #line
# directive so compiler messages point at README.md's own lines.
file(READ "${README}" _text)
string(REPLACE "\r\n" "\n" _text "${_text}")
set(_text "\n${_text}")  # lets a fence on the very first line match "\n```cpp\n" too

set(_open "\n```cpp\n")
string(FIND "${_text}" "${_open}" _begin)
if(_begin EQUAL -1)
    message(FATAL_ERROR "${README}: no line reading exactly ```cpp")
endif()
string(LENGTH "${_open}" _open_length)
math(EXPR _body "${_begin} + ${_open_length}")

string(SUBSTRING "${_text}" 0 ${_body} _before)
string(REGEX MATCHALL "\n" _newlines "${_before}")
list(LENGTH _newlines _first_line)  # _before ends with the fence's newline: count = first code line

string(SUBSTRING "${_text}" ${_body} -1 _rest)
string(FIND "\n${_rest}" "\n```" _end)
if(_end LESS_EQUAL 0)
    message(FATAL_ERROR "${README}: the ```cpp block on line ${_first_line} is empty or never closed")
endif()
string(SUBSTRING "${_rest}" 0 ${_end} _code)

file(WRITE "${OUTPUT}" "// Generated from README.md by cmake/ExtractReadmeExample.cmake: edit README.md.\n"
                       "#line ${_first_line} \"${README}\"\n${_code}")
