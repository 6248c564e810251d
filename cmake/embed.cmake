# cmake -DIN=file.bin -DOUT=file.cpp -DSYM=name -P embed.cmake
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR size "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n" body "${body}")
file(WRITE ${OUT} "extern const unsigned char ${SYM}[];\nextern const unsigned long ${SYM}_size;\nalignas(16) const unsigned char ${SYM}[] = {\n${body}0};\nconst unsigned long ${SYM}_size = ${size};\n")
