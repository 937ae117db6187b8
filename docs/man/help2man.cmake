# Writes one man page from a program's --help with help2man, so that the pages say what the
# programs say. With SUBCOMMAND set it is the page of one command of the CLI: help2man reads
# `PROGRAM SUBCOMMAND --help`, and the page is titled PROGRAM-SUBCOMMAND.
#
# help2man reads its own conventions ("Usage:", further forms after "or:", "Examples:") from
# the text, so a wrapper script hands it the help in them; and the examples, a command a line,
# are kept unfilled.
# cmake -DHELP2MAN=... -DPROGRAM=... [-DSUBCOMMAND=...] -DSECTION=1 -DNAME=... -DINCLUDE=...
#       -DOUT=... -P help2man.cmake
get_filename_component(prog ${PROGRAM} NAME)
set(page ${prog})
if(SUBCOMMAND)
  set(page ${prog}-${SUBCOMMAND})
endif()
execute_process(COMMAND ${PROGRAM} --version OUTPUT_VARIABLE version
                OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR NOT version MATCHES "^${prog} ")
  message(FATAL_ERROR "${PROGRAM} --version: ${version}")
endif()
string(REPLACE "${prog} " "${page} " version "${version}")

get_filename_component(dir ${OUT} DIRECTORY)
set(wrapper ${dir}/help2man-wrap/${page})
file(WRITE ${wrapper} "#!/bin/sh\n'${PROGRAM}' ${SUBCOMMAND} --help | sed -e '1s/^usage:/Usage:/' \\
    -e '2,/^$/s/^       \\([a-z]\\)/   or: \\1/' -e 's/^examples:$/Examples:/'\n")
file(CHMOD ${wrapper} PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE)

execute_process(COMMAND ${HELP2MAN} --no-info --section=${SECTION} --name=${NAME}
                        --include=${INCLUDE} --version-string=${version} --output=${OUT}
                        ${wrapper}
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  file(REMOVE ${OUT})
  message(FATAL_ERROR "help2man ${page}: ${err}")
endif()
file(READ ${OUT} text)
string(REGEX REPLACE "(\n\\.SH EXAMPLES\n\\.IP\n)(([^.\n][^\n]*\n)+)" "\\1.nf\n\\2.fi\n" text
       "${text}")
file(WRITE ${OUT} "${text}")
