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
