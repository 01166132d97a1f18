#!/usr/bin/env python3
"""Split a `perf record --call-graph dwarf` profile of `hscost -w ssl` into the server's samples
(a srv_* frame on the stack) and the rest, and print for the server: self time by library and by
function, and inclusive time of functions.   perf script -i perf.data | python3 perfsplit.py"""
import collections, re, sys

frame = re.compile(r"^\s+[0-9a-f]+\s+(.+?)\s+\((.+)\)$")
samples, cur = [], []
for line in sys.stdin:
    if not line.strip():
        if cur: samples.append(cur)
        cur = []
    elif (m := frame.match(line)):
        cur.append((re.sub(r"\+0x[0-9a-f]+$", "", m.group(1)), m.group(2).rsplit("/", 1)[-1]))
if cur: samples.append(cur)

server = [s for s in samples if any(f.startswith("srv_") for f, _ in s)]
print(f"{len(samples)} samples, {len(server)} in the server's calls ({100 * len(server) / len(samples):.0f} %)\n")
def top(counter, title, n):
    print(f"{title}:")
    for k, v in counter.most_common(n):
        print(f"  {100 * v / len(server):5.1f} %  {k}")
    print()
top(collections.Counter(s[0][1] for s in server), "server self time by library", 8)
top(collections.Counter(f"{s[0][0]} ({s[0][1]})" for s in server), "server self time by function", 25)
incl = collections.Counter()
for s in server:
    incl.update({f for f, _ in s})
top(incl, "server inclusive time by function", 60)
