#!/usr/bin/env python3
"""Writes the seed corpus of fuzz/virtqueue_fuzz.cpp (see its input layout)."""
import os
import struct
import sys

NEXT, WRITE, INDIRECT = 1, 2, 4


class Seed:
    def __init__(self, log2_size, event_idx=False, device_writes=False, reset=False, advance=0):
        self.size = 1 << log2_size
        config = log2_size | (0x10 if event_idx else 0) | (0x40 if device_writes else 0) | (0x80 if reset else 0)
        self.header = bytes([config, advance]) + bytes(14)
        self.memory = bytearray(0x600)
        self.avail = 16 * self.size
        self.used = (self.avail + 6 + 2 * self.size + 3) & ~3
        self.avail_idx = 0

    def put(self, address, fmt, *values):
        end = address + struct.calcsize(fmt)
        if end > len(self.memory):
            self.memory.extend(bytes(end - len(self.memory)))
        struct.pack_into(fmt, self.memory, address, *values)

    def descriptor(self, index, address, length, flags=0, next_=0, table=0):
        self.put(table + 16 * index, "<QIHH", address, length, flags, next_)

    def available(self, head):
        self.put(self.avail + 4 + 2 * (self.avail_idx % self.size), "<H", head)
        self.avail_idx += 1
        self.put(self.avail + 2, "<H", self.avail_idx & 0xFFFF)

    def bytes(self):
        return self.header + bytes(self.memory)


def seeds():
    s = Seed(4)  # a request: one readable, one writable buffer
    s.descriptor(0, 0x400, 16, NEXT, 1)
    s.descriptor(1, 0x480, 32, WRITE)
    s.available(0)
    yield "direct", s

    s = Seed(4, event_idx=True, device_writes=True)  # an indirect table
    s.descriptor(0, 0x400, 8, NEXT, 1, table=0x300)
    s.descriptor(1, 0x410, 8, NEXT | WRITE, 2, table=0x300)
    s.descriptor(2, 0x420, 8, WRITE, table=0x300)
    s.descriptor(3, 0x300, 48, INDIRECT)
    s.available(3)
    yield "indirect", s

    s = Seed(2, device_writes=True, reset=True, advance=4)  # a full ring, refilled
    for i in range(4):
        s.descriptor(i, 0x400 + 0x20 * i, 0x20, WRITE)
        s.available(i)
    yield "full_ring", s

    s = Seed(3, event_idx=True, advance=1)  # a chain through the whole table
    for i in range(8):
        s.descriptor(i, 0x400 + i, 1, NEXT if i < 7 else 0, i + 1)
    s.available(0)
    yield "long_chain", s

    s = Seed(4)  # a loop, which must be refused
    s.descriptor(0, 0x400, 1, NEXT, 1)
    s.descriptor(1, 0x400, 1, NEXT, 0)
    s.available(0)
    yield "loop", s

    s = Seed(8, event_idx=True, advance=200)  # the largest queue
    s.descriptor(0, 0x10000 - 8, 16, WRITE)  # straddles the two regions
    s.available(0)
    yield "max_size", s

    s = Seed(4)  # explicit layout
    config = 0x20 | 0x10
    s.header = bytes([config, 1]) + struct.pack("<HIII", 16, 0x100, 0x200, 0x280)
    s.avail, s.used = 0x200, 0x280
    s.descriptor(0, 0x400, 4, table=0x100)
    s.available(0)
    yield "explicit", s


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "virtqueue")
    os.makedirs(out, exist_ok=True)
    for name, seed in seeds():
        with open(os.path.join(out, name), "wb") as f:
            f.write(seed.bytes())


if __name__ == "__main__":
    main()
