#!/usr/bin/env python3
"""Writes the seed corpus of fuzz/vhost_user_fuzz.cpp (see its input layout):
whole front-end sessions that set a ring up and run block requests, so the
fuzzer starts from the paths past the handshake."""
import os
import struct
import sys

USER = 0x7F0000000000  # where the "front-end" says it mapped guest memory
NEED_REPLY = 1
(GET_FEATURES, SET_FEATURES, SET_OWNER, SET_MEM_TABLE, SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE,
 GET_VRING_BASE, SET_VRING_KICK, SET_VRING_CALL, GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES,
 SET_VRING_ENABLE, GET_CONFIG, GET_INFLIGHT_FD, SET_INFLIGHT_FD) = (1, 2, 3, 5, 8, 9, 10, 11, 12, 13, 15, 16,
                                                                   18, 24, 31, 32)
FD_NONE, FD_MEMORY, FD_EVENT, FD_RECEIVED = 0, 1, 3, 5


def message(request, payload=b"", fd=FD_NONE, flags=NEED_REPLY):
    return bytes([0, request, flags]) + struct.pack("<H", len(payload)) + payload + bytes([fd])


def memory(offset, data):
    out = b""
    for at in range(0, len(data), 255):
        chunk = data[at:at + 255]
        out += bytes([2]) + struct.pack("<HB", offset + at, len(chunk)) + chunk
    return out


def session(requests, queue_size=16, inflight=True, event_idx=False):
    features = (1 << 32) | (1 << 30) | (1 << 9) | ((1 << 29) if event_idx else 0)
    protocol = (1 << 3) | (1 << 9) | ((1 << 12) if inflight else 0)
    s = message(GET_FEATURES) + message(SET_FEATURES, struct.pack("<Q", features))
    s += message(GET_PROTOCOL_FEATURES) + message(SET_PROTOCOL_FEATURES, struct.pack("<Q", protocol))
    s += message(SET_OWNER) + message(GET_CONFIG, struct.pack("<III", 0, 60, 0) + bytes(60))
    s += message(SET_MEM_TABLE, struct.pack("<II", 1, 0) + struct.pack("<QQQQ", 0, 1 << 20, USER, 0), FD_MEMORY)
    if inflight:
        s += message(GET_INFLIGHT_FD, struct.pack("<QQHHI", 0, 0, 1, queue_size, 0))
        size = (16 + 16 * queue_size + 63) // 64 * 64
        s += message(SET_INFLIGHT_FD, struct.pack("<QQHHI", size, 0, 1, queue_size, 0), FD_RECEIVED)
    desc, avail, used = 0x1000, 0x2000, 0x3000
    s += message(SET_VRING_NUM, struct.pack("<II", 0, queue_size))
    s += message(SET_VRING_BASE, struct.pack("<II", 0, 0))
    s += message(SET_VRING_ADDR, struct.pack("<IIQQQQ", 0, 0, USER + desc, USER + used, USER + avail, 0))
    s += message(SET_VRING_CALL, struct.pack("<Q", 0), FD_EVENT)
    s += message(SET_VRING_KICK, struct.pack("<Q", 0), FD_EVENT)
    s += message(SET_VRING_ENABLE, struct.pack("<II", 0, 1))
    # Block requests: header, data, status, each a descriptor.
    table, ring = b"", b""
    for i, (kind, sector) in enumerate(requests):
        header, data, status = 0x8000 + 0x20 * i, 0x9000 + 0x200 * i, 0xF000 + i
        memory_write = memory(header, struct.pack("<IIQ", kind, 0, sector))
        s += memory_write
        write = 2 if kind == 0 else 0  # IN: data is device-writable
        head = 3 * i
        table += struct.pack("<QIHH", header, 16, 1, head + 1)
        table += struct.pack("<QIHH", data, 512, 1 | write, head + 2)
        table += struct.pack("<QIHH", status, 1, 2, 0)
        ring += struct.pack("<H", head)
    s += memory(desc, table) + memory(avail + 4, ring) + memory(avail, struct.pack("<HH", 0, len(requests)))
    s += bytes([1])  # kick
    s += message(GET_VRING_BASE, struct.pack("<II", 0, 0))
    return s


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "vhost_user")
    os.makedirs(out, exist_ok=True)
    seeds = {
        "read": session([(0, 0)]),
        "write-read-flush": session([(1, 8), (0, 8), (4, 0)]),
        "no-inflight": session([(1, 0), (0, 0)], inflight=False),
        "event-idx": session([(0, 1), (8, 0), (1, 600)], event_idx=True, queue_size=64),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
