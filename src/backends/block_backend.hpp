// The I/O side of a virtual disk, apart from the virtio device model: the
// device hands it reads, writes, flushes and range operations with a tag,
// and collects results when the completion fd is readable. Today the
// backend is an image file or host block device on io_uring in the monitor;
// the same interface is what a vhost-user backend process will implement.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <span>
#include <string>

#include "common/error.hpp"

namespace hospes::backends {

class BlockBackend {
public:
    virtual ~BlockBackend() = default;

    virtual uint64_t size() const = 0;        // bytes
    virtual uint32_t block_size() const = 0;  // the smallest I/O unit the guest should use
    virtual bool read_only() const = 0;
    // The device's serial number (virtio-blk GET_ID), at most 20 bytes.
    virtual std::string serial() const = 0;
    // Signalled (an eventfd write) whenever completions arrive; watch it
    // edge-triggered and call reap(). It is never read, so it stays readable.
    virtual int completion_fd() const = 0;

    // Queue an operation; `iov` need only live until submit(). The result
    // arrives through reap(): bytes transferred, or -errno.
    virtual void read(uint64_t offset, std::span<const iovec> iov, uint64_t tag) = 0;
    virtual void write(uint64_t offset, std::span<const iovec> iov, uint64_t tag) = 0;
    // Completes when every write completed before it is durable.
    virtual void flush(uint64_t tag) = 0;
    // Deallocate (`zeroes`: and read back as zeroes) a range.
    virtual void discard(uint64_t offset, uint64_t length, uint64_t tag) = 0;
    virtual void write_zeroes(uint64_t offset, uint64_t length, bool may_unmap, uint64_t tag) = 0;
    // Hands the queued operations to the host. Some may complete during the
    // call (page-cache hits): reap() right after it saves a wake-up.
    virtual void submit() = 0;

    struct Completion {
        uint64_t tag;
        int64_t result;
    };
    // Fills `done` with finished operations; returns how many.
    virtual size_t reap(std::span<Completion> done) = 0;
    // Waits for every operation in flight; their results are dropped.
    virtual void drain() = 0;
    // Blocks until at least one operation completed (at once when none is
    // in flight); reap() collects it.
    virtual void wait() = 0;
};

}  // namespace hospes::backends
