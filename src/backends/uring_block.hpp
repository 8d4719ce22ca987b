// A disk image file or host block device (an LVM volume, like Xen's phy:
// disks) served with io_uring: many requests in flight, one submission
// system call per batch, completions signalled on an eventfd.
#pragma once

#include <liburing.h>

#include <memory>
#include <vector>

#include "backends/block_backend.hpp"
#include "common/unique_fd.hpp"

namespace hospes::backends {

struct BlockOpenOptions {
    bool read_only = false;
    bool direct = false;   // O_DIRECT
    unsigned depth = 256;  // operations in flight at most
    // How long a lock another process holds is waited for (a back-end
    // restarted while its killed predecessor still lets go); 0: not at all.
    unsigned lock_wait_ms = 0;
};

// An image or block device opened and locked, not yet served: what a
// privileged process opens and an unprivileged one serves (hospes-blkback).
struct OpenDisk {
    UniqueFd file;
    uint64_t size = 0;
    uint32_t block_size = 512;
    bool read_only = false;
    std::string serial;
};

// Opens `path` as a disk and locks it (flock): a writable disk
// exclusively, a read-only one shared with other readers.
Result<OpenDisk> open_disk(const std::string& path, const BlockOpenOptions& options);

// A disk's io_uring, made by a privileged process for one that may not
// make rings (io_uring_setup is off a back-end worker's seccomp list:
// io_uring's operations bypass seccomp). It is restricted: only reads,
// writes, fsync and fallocate, and only on this disk (a registered file),
// so whoever holds it cannot use it to open or reach anything else.
// Completions signal `event`. Descriptors can be handed to another process.
struct DiskRing {
    UniqueFd ring, event;
    io_uring_params params{};
};
Result<DiskRing> make_disk_ring(const OpenDisk& disk, unsigned depth);
// The same in two steps, for a disk not known yet: a spare ring, made and
// restricted by the privileged process but not enabled, whose one file
// slot attach_disk() fills (and then enables it) where the disk arrives,
// with nothing but io_uring_register.
Result<DiskRing> make_spare_ring(unsigned depth);
Result<void> attach_disk(const DiskRing& ring, const OpenDisk& disk);

class UringBlock final : public BlockBackend {
public:
    static Result<std::unique_ptr<UringBlock>> open(const std::string& path, const BlockOpenOptions& options);
    // Serves an open disk (its file is duplicated, sharing the lock) on a
    // ring of its own.
    static Result<std::unique_ptr<UringBlock>> serve(const OpenDisk& disk, unsigned depth);
    // Serves it on `ring` (make_disk_ring's, for this disk): mapped here,
    // left as it is (quiet, the file still registered) when this ends, for
    // the next one to use. No system call but mmap and dup.
    static Result<std::unique_ptr<UringBlock>> adopt(const OpenDisk& disk, const DiskRing& ring);
    ~UringBlock() override;

    uint64_t size() const override { return size_; }
    uint32_t block_size() const override { return block_size_; }
    bool read_only() const override { return read_only_; }
    std::string serial() const override { return serial_; }
    int completion_fd() const override { return event_.get(); }

    void read(uint64_t offset, std::span<const iovec> iov, uint64_t tag) override;
    void write(uint64_t offset, std::span<const iovec> iov, uint64_t tag) override;
    void flush(uint64_t tag) override;
    void discard(uint64_t offset, uint64_t length, uint64_t tag) override;
    void write_zeroes(uint64_t offset, uint64_t length, bool may_unmap, uint64_t tag) override;
    void submit() override;
    size_t reap(std::span<Completion> done) override;
    void drain() override;
    void wait() override;

private:
    UringBlock() = default;
    io_uring_sqe* next_sqe();
    void on_disk(io_uring_sqe* sqe, uint64_t tag);
    static constexpr int kRegisteredFile = 0;

    UniqueFd file_;
    UniqueFd event_;
    io_uring ring_{};
    bool ring_ready_ = false;
    bool ring_owned_ = true;  // made here: its file is given back as it ends
    uint64_t size_ = 0;
    uint32_t block_size_ = 512;
    bool read_only_ = false;
    std::string serial_;
    unsigned in_flight_ = 0;  // queued or submitted, not yet reaped
    std::vector<uint64_t> failed_;  // tags that found no submission slot
};

}  // namespace hospes::backends
