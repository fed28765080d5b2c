# Extracts the C example between the readme-example markers of README.md,
# compiles it exactly as the README says (cc -std=c11 -O2 -I emitter), and
# runs it once without a segment: it must say why it cannot attach.
file(READ "${SOURCE_DIR}/README.md" readme)
string(REGEX MATCH "readme-example: begin[^\n]*\n```c\n(.*)\n```\n<!-- readme-example: end" _ "${readme}")
if(NOT CMAKE_MATCH_1)
  message(FATAL_ERROR "README.md: no readme-example block found")
endif()
file(WRITE "${WORK_DIR}/worker.c" "${CMAKE_MATCH_1}\n")
execute_process(COMMAND ${CC} -std=c11 -O2 -Wall -Wextra -Werror -I ${SOURCE_DIR}/emitter worker.c -o worker
                WORKING_DIRECTORY "${WORK_DIR}" RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "README example does not compile:\n${err}")
endif()
execute_process(COMMAND env -u VIGIL_SHM ./worker WORKING_DIRECTORY "${WORK_DIR}"
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 1 OR NOT err MATCHES "vigil_attach: no vigil segment")
  message(FATAL_ERROR "README example: expected exit 1 and 'no vigil segment', got ${rc}: ${err}")
endif()
message(STATUS "README example compiles and reports a missing segment")

# The C++, Python and shell examples (test_lang runs them under vigild):
# without a segment each must say why it cannot attach.  The C++ one is
# built as the README says for a build tree: -I emitter -L build/emitter -lvigil.
function(readme_block tag fence out)
  string(REGEX MATCH "readme-example-${tag}: begin[^\n]*\n```${fence}\n(.*)\n```\n<!-- readme-example-${tag}: end"
         _ "${readme}")
  if(NOT CMAKE_MATCH_1)
    message(FATAL_ERROR "README.md: no readme-example-${tag} block found")
  endif()
  file(WRITE "${WORK_DIR}/${out}" "${CMAKE_MATCH_1}\n")
endfunction()
if(CXX AND LIBVIGIL_DIR)
  readme_block(cpp cpp worker.cpp)
  execute_process(COMMAND ${CXX} -std=c++17 -O2 -Wall -Wextra -Werror -I ${SOURCE_DIR}/emitter worker.cpp
                          -L ${LIBVIGIL_DIR} -lvigil -o worker-cpp
                  WORKING_DIRECTORY "${WORK_DIR}" RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "README C++ example does not compile:\n${err}")
  endif()
  execute_process(COMMAND env -u VIGIL_SHM "LD_LIBRARY_PATH=${LIBVIGIL_DIR}" ./worker-cpp
                  WORKING_DIRECTORY "${WORK_DIR}" RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 1 OR NOT err MATCHES "vigil_attach: no vigil segment")
    message(FATAL_ERROR "README C++ example: expected exit 1 and 'no vigil segment', got ${rc}: ${err}")
  endif()
endif()
if(PYTHON3 AND LIBVIGIL_DIR)
  readme_block(py python worker.py)
  execute_process(COMMAND env -u VIGIL_SHM "VIGIL_LIBRARY=${LIBVIGIL_DIR}/libvigil.so.1"
                          "PYTHONPATH=${SOURCE_DIR}/python" ${PYTHON3} worker.py
                  WORKING_DIRECTORY "${WORK_DIR}" RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 1 OR NOT err MATCHES "worker: .*vigil.attach: no vigil segment")
    message(FATAL_ERROR "README Python example: expected exit 1 and 'no vigil segment', got ${rc}: ${err}")
  endif()
endif()
# The C example against libvigil instead of inline (-DVIGIL_LINK).
if(LIBVIGIL_DIR)
  execute_process(COMMAND ${CC} -std=c11 -O2 -Wall -Wextra -Werror -DVIGIL_LINK -I ${SOURCE_DIR}/emitter worker.c
                          -L ${LIBVIGIL_DIR} -lvigil -o worker-linked
                  WORKING_DIRECTORY "${WORK_DIR}" RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "README C example does not build with -DVIGIL_LINK -lvigil:\n${err}")
  endif()
  execute_process(COMMAND nm -u worker-linked WORKING_DIRECTORY "${WORK_DIR}" OUTPUT_VARIABLE undef)
  if(NOT undef MATCHES "vigil_attach")
    message(FATAL_ERROR "README C example with -DVIGIL_LINK did not call libvigil's vigil_attach")
  endif()
  execute_process(COMMAND env -u VIGIL_SHM "LD_LIBRARY_PATH=${LIBVIGIL_DIR}" ./worker-linked
                  WORKING_DIRECTORY "${WORK_DIR}" RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 1 OR NOT err MATCHES "vigil_attach: no vigil segment")
    message(FATAL_ERROR "README C example with -DVIGIL_LINK: expected exit 1, got ${rc}: ${err}")
  endif()
endif()
readme_block(sh sh worker.sh)
execute_process(COMMAND bash -n worker.sh WORKING_DIRECTORY "${WORK_DIR}" RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "README shell example is not valid bash:\n${err}")
endif()
message(STATUS "README C++, Python and shell examples build/parse and report a missing segment")
