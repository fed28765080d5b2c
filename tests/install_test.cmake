# Installs the build into a temporary prefix and builds out-of-tree
# workers with nothing but pkg-config: the README's C example header-only
# (`pkg-config --cflags vigil`), its C++ example against libvigil
# (`pkg-config --cflags --libs vigil`, run once: it must say why it cannot
# attach), and imports the installed Python module.
set(prefix "${WORK_DIR}/install-prefix")
file(REMOVE_RECURSE "${prefix}")
execute_process(COMMAND ${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${prefix}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install failed:\n${out}\n${err}")
endif()
foreach(f bin/vigild bin/vigilctl include/vigil.h share/vigil/worker-heartbeat-emitter.sh
          share/pkgconfig/vigil.pc lib/systemd/system/vigild.service
          ${LIBDIR}/libvigil.so ${LIBDIR}/libvigil.so.1 ${LIBDIR}/libvigil.a
          share/vigil/libvigil.map lib/python3/dist-packages/vigil.py)
  if(NOT EXISTS "${prefix}/${f}")
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()
execute_process(COMMAND env "PKG_CONFIG_PATH=${prefix}/share/pkgconfig" pkg-config --cflags vigil
                RESULT_VARIABLE rc OUTPUT_VARIABLE cflags OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rc EQUAL 0 OR NOT cflags MATCHES "-I.*/include")
  message(FATAL_ERROR "pkg-config --cflags vigil gave '${cflags}' (rc ${rc})")
endif()
file(READ "${SOURCE_DIR}/README.md" readme)
string(REGEX MATCH "readme-example: begin[^\n]*\n```c\n(.*)\n```\n<!-- readme-example: end" _ "${readme}")
file(WRITE "${WORK_DIR}/oot/worker.c" "${CMAKE_MATCH_1}\n")
separate_arguments(flags UNIX_COMMAND "${cflags}")
execute_process(COMMAND ${CC} -std=c11 -O2 -Wall -Werror ${flags} worker.c -o worker
                WORKING_DIRECTORY "${WORK_DIR}/oot" RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "out-of-tree worker does not build with pkg-config --cflags vigil:\n${err}")
endif()
# The C++ example, out of tree, with pkg-config --cflags --libs.
execute_process(COMMAND env "PKG_CONFIG_PATH=${prefix}/share/pkgconfig" pkg-config --cflags --libs vigil
                RESULT_VARIABLE rc OUTPUT_VARIABLE cxxflags OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rc EQUAL 0 OR NOT cxxflags MATCHES "-lvigil")
  message(FATAL_ERROR "pkg-config --cflags --libs vigil gave '${cxxflags}' (rc ${rc})")
endif()
string(REGEX MATCH "readme-example-cpp: begin[^\n]*\n```cpp\n(.*)\n```\n<!-- readme-example-cpp: end" _ "${readme}")
if(NOT CMAKE_MATCH_1)
  message(FATAL_ERROR "README.md: no readme-example-cpp block")
endif()
file(WRITE "${WORK_DIR}/oot/worker.cpp" "${CMAKE_MATCH_1}\n")
separate_arguments(xflags UNIX_COMMAND "${cxxflags}")
execute_process(COMMAND ${CXX} -std=c++17 -O2 -Wall -Werror worker.cpp ${xflags} -o worker-cpp
                WORKING_DIRECTORY "${WORK_DIR}/oot" RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "out-of-tree C++ worker does not build with pkg-config --cflags --libs vigil:\n${err}")
endif()
execute_process(COMMAND env -u VIGIL_SHM "LD_LIBRARY_PATH=${prefix}/${LIBDIR}" ./worker-cpp
                WORKING_DIRECTORY "${WORK_DIR}/oot" RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 1 OR NOT err MATCHES "vigil_attach: no vigil segment")
  message(FATAL_ERROR "out-of-tree C++ worker: expected exit 1 and 'no vigil segment', got ${rc}: ${err}")
endif()
# The installed Python module finds the installed library by itself.
if(PYTHON3)
  execute_process(COMMAND env -u VIGIL_LIBRARY -u VIGIL_SHM "PYTHONPATH=${prefix}/lib/python3/dist-packages"
                          ${PYTHON3} -c "import vigil\ntry:\n    vigil.attach()\nexcept vigil.VigilError as e:\n    print(e)"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0 OR NOT out MATCHES "no vigil segment")
    message(FATAL_ERROR "installed Python module: rc ${rc}: ${out}${err}")
  endif()
endif()
execute_process(COMMAND "${prefix}/bin/vigild" --version RESULT_VARIABLE rc OUTPUT_VARIABLE v)
if(NOT rc EQUAL 0 OR NOT v MATCHES "vigild")
  message(FATAL_ERROR "installed vigild --version failed")
endif()
file(REMOVE_RECURSE "${prefix}")
message(STATUS "installed; out-of-tree C and C++ workers build with pkg-config; the Python module imports")
