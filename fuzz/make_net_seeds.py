#!/usr/bin/env python3
"""Writes seed inputs for net_fuzz (layout: see fuzz/net_fuzz.cpp) into
fuzz/corpus/net: well-formed transmit and receive traffic, so the fuzzer
starts from inputs that reach the tap and the mergeable-buffer path."""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "net")
RX, TX = 0x0000, 0x3000
NEXT, WRITE = 1, 2


class Image:
    def __init__(self):
        self.mem = bytearray()

    def put(self, at, data):
        if len(self.mem) < at + len(data):
            self.mem.extend(bytes(at + len(data) - len(self.mem)))
        self.mem[at:at + len(data)] = data

    def desc(self, ring, i, addr, length, flags, nxt=0):
        self.put(ring + 16 * i, struct.pack("<QIHH", addr, length, flags, nxt))

    def avail(self, ring, heads):
        self.put(ring + 0x1000, struct.pack("<HH", 0, len(heads)))
        for n, h in enumerate(heads):
            self.put(ring + 0x1000 + 4 + 2 * n, struct.pack("<H", h))


def frame(n, seed):
    return b"\xff" * 6 + bytes([2, 0, 0, 0, 0, seed]) + b"\x88\xb5" + bytes((seed + i) & 0xff for i in range(n))


def write(name, features, sizes, steps, image):
    data = bytes([features, sizes, len(steps)]) + b"".join(bytes(s) for s in steps) + bytes(image.mem)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


os.makedirs(OUT, exist_ok=True)

# Transmit: four chains (header + frame in two buffers), one notification.
img = Image()
for i in range(4):
    img.desc(TX, 2 * i, 0x6000 + 0x400 * i, 12, NEXT, 2 * i + 1)
    img.put(0x6000 + 0x400 * i + 12, frame(100, i))
    img.desc(TX, 2 * i + 1, 0x6000 + 0x400 * i + 12, 114, 0)
img.avail(TX, [0, 2, 4, 6])
write("tx", 0x1f, 0x33, [(0, 0)], img)

# Receive without mergeable buffers: two 2 KiB buffers, two frames.
img = Image()
for i in range(2):
    img.desc(RX, i, 0x8000 + 0x800 * i, 0x800, WRITE)
img.avail(RX, [0, 1])
write("rx", 0x02, 0x33, [(1, 0), (2, 40), (2, 20), (3, 0)], img)

# Mergeable buffers: eight 1 KiB buffers, a 3.5 KiB frame, then more buffers.
img = Image()
for i in range(8):
    img.desc(RX, i, 0x8000 + 0x400 * i, 0x400, WRITE)
img.avail(RX, [0, 1, 2, 3, 4, 5, 6, 7])
write("rx_mergeable", 0x0b, 0x44, [(1, 0), (2, 100), (3, 0), (2, 200), (3, 0), (5, 4), (1, 0)], img)

# Both directions with EVENT_IDX, resets in between.
img = Image()
img.desc(TX, 0, 0x6000, 80, 0)
img.put(0x6000 + 12, frame(60, 9))
img.avail(TX, [0])
img.desc(RX, 0, 0x8000, 0x600, WRITE)
img.avail(RX, [0])
write("both", 0x1b, 0x22, [(0, 0), (2, 10), (3, 0), (6, 0), (4, 0), (0, 0), (5, 0x81), (0, 0)], img)
