#!/usr/bin/env python3
"""Writes the seed corpus of fuzz/vhost_user_fuzz.cpp (see its input layout):
whole front-end sessions that set rings up and run block requests (virtio-blk)
or send and receive packets (virtio-net), so the fuzzer starts from the paths
past the handshake."""
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


def handshake(features, inflight, queues, queue_size):
    protocol = (1 << 3) | (1 << 9) | ((1 << 12) if inflight else 0)
    s = message(GET_FEATURES) + message(SET_FEATURES, struct.pack("<Q", features))
    s += message(GET_PROTOCOL_FEATURES) + message(SET_PROTOCOL_FEATURES, struct.pack("<Q", protocol))
    s += message(SET_OWNER) + message(GET_CONFIG, struct.pack("<III", 0, 60, 0) + bytes(60))
    s += message(SET_MEM_TABLE, struct.pack("<II", 1, 0) + struct.pack("<QQQQ", 0, 1 << 20, USER, 0), FD_MEMORY)
    if inflight:
        s += message(GET_INFLIGHT_FD, struct.pack("<QQHHI", 0, 0, queues, queue_size, 0))
        size = queues * ((16 + 16 * queue_size + 63) // 64 * 64)
        s += message(SET_INFLIGHT_FD, struct.pack("<QQHHI", size, 0, queues, queue_size, 0), FD_RECEIVED)
    return s


def ring(index, queue_size, desc, avail, used):
    s = message(SET_VRING_NUM, struct.pack("<II", index, queue_size))
    s += message(SET_VRING_BASE, struct.pack("<II", index, 0))
    s += message(SET_VRING_ADDR, struct.pack("<IIQQQQ", index, 0, USER + desc, USER + used, USER + avail, 0))
    s += message(SET_VRING_CALL, struct.pack("<Q", index), FD_EVENT)
    s += message(SET_VRING_KICK, struct.pack("<Q", index), FD_EVENT)
    s += message(SET_VRING_ENABLE, struct.pack("<II", index, 1))
    return s


def session(requests, queue_size=16, inflight=True, event_idx=False):
    """virtio-blk: one queue, the given (kind, sector) requests."""
    features = (1 << 32) | (1 << 30) | (1 << 9) | ((1 << 29) if event_idx else 0)
    s = bytes([0]) + handshake(features, inflight, 1, queue_size)
    desc, avail, used = 0x1000, 0x2000, 0x3000
    s += ring(0, queue_size, desc, avail, used)
    # Block requests: header, data, status, each a descriptor.
    table, entries = b"", b""
    for i, (kind, sector) in enumerate(requests):
        header, data, status = 0x8000 + 0x20 * i, 0x9000 + 0x200 * i, 0xF000 + i
        s += memory(header, struct.pack("<IIQ", kind, 0, sector))
        write = 2 if kind == 0 else 0  # IN: data is device-writable
        head = 3 * i
        table += struct.pack("<QIHH", header, 16, 1, head + 1)
        table += struct.pack("<QIHH", data, 512, 1 | write, head + 2)
        table += struct.pack("<QIHH", status, 1, 2, 0)
        entries += struct.pack("<H", head)
    s += memory(desc, table) + memory(avail + 4, entries) + memory(avail, struct.pack("<HH", 0, len(requests)))
    s += bytes([1])  # kick
    s += message(GET_VRING_BASE, struct.pack("<II", 0, 0))
    return s


def frame(dst, src, payload, flags=0, gso_type=0, gso_size=0, csum_start=0, csum_offset=0):
    header = struct.pack("<BBHHHHH", flags, gso_type, 14, gso_size, csum_start, csum_offset, 0)
    return header + dst + src + struct.pack(">H", 0x0800) + payload


def net_session(sends, receives, offloads=True, queue_size=16, inflight=True):
    """virtio-net: receive buffers on queue 0, the packets `sends` on queue 1
    (to the other guest), and `receives` packets from the other guest."""
    net_features = (1 << 5) | (((1 << 0) | (1 << 1) | (1 << 7) | (1 << 11)) if offloads else 0)
    features = (1 << 32) | (1 << 30) | net_features
    s = bytes([1]) + handshake(features, inflight, 2, queue_size)
    rx_desc, rx_avail, rx_used = 0x1000, 0x2000, 0x3000
    tx_desc, tx_avail, tx_used = 0x4000, 0x5000, 0x6000
    s += ring(0, queue_size, rx_desc, rx_avail, rx_used) + ring(1, queue_size, tx_desc, tx_avail, tx_used)
    # Receive buffers of 2 KiB, all the ring holds.
    table, entries = b"", b""
    for i in range(queue_size):
        table += struct.pack("<QIHH", 0x10000 + 0x800 * i, 0x800, 2, 0)
        entries += struct.pack("<H", i)
    s += memory(rx_desc, table) + memory(rx_avail + 4, entries) + memory(rx_avail, struct.pack("<HH", 0, queue_size))
    table, entries = b"", b""
    for i, packet in enumerate(sends):
        at = 0x7000 + 0x200 * i
        s += memory(at, packet)
        table += struct.pack("<QIHH", at, len(packet), 0, 0)
        entries += struct.pack("<H", i)
    s += memory(tx_desc, table) + memory(tx_avail + 4, entries) + memory(tx_avail, struct.pack("<HH", 0, len(sends)))
    s += bytes([1])  # kick
    for packet in receives:
        s += bytes([3]) + struct.pack("<H", len(packet)) + packet
    s += message(GET_VRING_BASE, struct.pack("<II", 1, 0))
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
    me, peer, broadcast = bytes([2, 0, 0, 0, 0, 0xA]), bytes([2, 0, 0, 0, 0, 0xB]), b"\xff" * 6
    ip = bytes([0x45, 0, 0, 48, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 2, 10, 0, 0, 3]) + bytes(28)
    seeds["net-ping-pong"] = net_session([frame(peer, me, ip), frame(broadcast, me, ip)], [frame(me, peer, ip)])
    seeds["net-partial-csum"] = net_session([frame(peer, me, ip, flags=1, csum_start=34, csum_offset=6)],
                                            [frame(me, peer, ip, flags=1, csum_start=34, csum_offset=6)])
    seeds["net-no-offloads"] = net_session([frame(peer, me, ip)], [frame(me, peer, ip, flags=1, csum_start=34,
                                                                         csum_offset=6)], offloads=False,
                                           inflight=False)
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
