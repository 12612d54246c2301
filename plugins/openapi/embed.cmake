# Writes the bytes of IN as a NUL-terminated C array into OUT, so a JSON file
# can be compiled into a plugin without any quoting rules to get wrong.
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){16})" "\\1\n" bytes "${bytes}")
file(WRITE ${OUT}
  "/* oa_document.c: generated from openapi.json by embed.cmake; edit that file. */\n"
  "#include <stddef.h>\n"
  "const char oa_document[] = {\n${bytes}0x00};\n"
  "const size_t oa_document_len = sizeof oa_document - 1;\n")
