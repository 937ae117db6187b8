# Writes the file IN as a C string constant review_page[] into OUT.
file(READ ${IN} content HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${content}")
file(WRITE ${OUT} "/* generated from web/review.html */\nconst char review_page[] = {${bytes} 0};\n")
