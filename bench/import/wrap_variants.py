#!/usr/bin/env python3
"""Damaged copies of a trace text for bench/import/same_import.sh (issue #15).

The text import joins wrapped lines by rules that look at each line's class; a change that
skips classifying some lines must join exactly as before. These copies put every kind of wrap
and repair where the rules have to decide, at random places (fixed seed: the same files every
run):

  crlf.txt       every line ends in CR LF
  quoted.txt     every line quoted "> " as a mail reply
  mixed.txt      "CPU n:" tags, trailing "<-- here" markers, prose, '#' comments and
                 "cpus=4" headers between the lines, some ending in a blank
  rewrapped.txt  format=flowed breaks (a blank, then the rest on the next line) and
                 quoted-printable soft breaks ('=') at random columns, trailing blanks
  split.txt      lines broken after their prefix's "secs.usecs:" (the event on the next line),
                 indented copies

Usage: wrap_variants.py TRACE.txt OUTDIR   then
       same_import.sh BEFORE AFTER OUTDIR/*.txt
"""
import os
import random
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    with open(src, encoding="utf-8", errors="surrogateescape") as f:
        lines = f.read().split("\n")

    def write(name, rows):
        with open(os.path.join(out, name), "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write("\n".join(rows))

    write("crlf.txt", [l + "\r" for l in lines])
    write("quoted.txt", ["> " + l for l in lines])

    rnd = random.Random(7)
    mixed = []
    for l in lines:
        r = rnd.random()
        if r < 0.05:
            mixed.append("CPU 3: " + l)
        elif r < 0.10:
            mixed.append(l + " <-- here")
        elif r < 0.13:
            mixed.append("some prose without a colon ")
            mixed.append(l)
        elif r < 0.15:
            mixed.append("# comment ")
            mixed.append(l)
        elif r < 0.17:
            mixed.append("cpus=4 ")
            mixed.append(l)
        else:
            mixed.append(l)
    write("mixed.txt", mixed)

    rnd = random.Random(11)
    rewrapped = []
    for l in lines:
        r = rnd.random()
        if r < 0.10 and len(l) > 20:
            k = rnd.randrange(3, len(l))
            rewrapped += [l[:k] + " ", l[k:].lstrip()]
        elif r < 0.14 and len(l) > 20:
            k = rnd.randrange(3, len(l))
            rewrapped += [l[:k] + "=", l[k:]]
        elif r < 0.18:
            rewrapped.append(l.rstrip() + "   ")
        else:
            rewrapped.append(l)
    write("rewrapped.txt", rewrapped)

    rnd = random.Random(13)
    split = []
    for l in lines:
        r = rnd.random()
        k = l.find(": ")
        if r < 0.15 and k > 0:
            split += [l[: k + 1], l[k + 2 :]]
        elif r < 0.20:
            split.append("  " + l + " ")
        else:
            split.append(l)
    write("split.txt", split)


if __name__ == "__main__":
    main()
