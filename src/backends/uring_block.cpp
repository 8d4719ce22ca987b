#include "backends/uring_block.hpp"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <utility>

#include "common/log.hpp"

namespace hospes::backends {

Result<OpenDisk> open_disk(const std::string& path, const BlockOpenOptions& options) {
    OpenDisk disk;
    int flags = (options.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | (options.direct ? O_DIRECT : 0);
    disk.file = UniqueFd(::open(path.c_str(), flags));
    if (!disk.file.valid()) {
        int error = errno;
        if (error == EINVAL && options.direct)
            return bad_input("disk '{}': the file system does not support O_DIRECT (drop ,direct)", path);
        return bad_input("cannot open disk '{}'{}: {}", path, options.read_only ? " read-only" : "",
                         std::strerror(error));
    }
    struct stat info{};
    if (::fstat(disk.file.get(), &info) != 0) return errno_error("disk '{}': fstat", path);
    if (S_ISREG(info.st_mode)) {
        disk.size = static_cast<uint64_t>(info.st_size);
    } else if (S_ISBLK(info.st_mode)) {
        uint64_t bytes = 0;
        int sector = 512;
        if (::ioctl(disk.file.get(), BLKGETSIZE64, &bytes) != 0) return errno_error("disk '{}': BLKGETSIZE64", path);
        if (::ioctl(disk.file.get(), BLKSSZGET, &sector) != 0) return errno_error("disk '{}': BLKSSZGET", path);
        disk.size = bytes;
        disk.block_size = static_cast<uint32_t>(sector);
    } else {
        return bad_input("disk '{}' is neither a regular file nor a block device", path);
    }
    if (disk.size < 512) return bad_input("disk '{}' is smaller than one 512-byte sector", path);
    if (disk.size % 512 != 0)
        log::warn("disk '{}': its last {} bytes are not a whole sector; the guest does not see them", path,
                  disk.size % 512);
    // Two guests writing one disk corrupt it: a writable disk is held
    // exclusively, a read-only one shared with other readers (for as long as
    // the file stays open, so a crashed monitor releases it).
    int locked;
    for (unsigned waited = 0;; waited += 50) {
        locked = ::flock(disk.file.get(), (options.read_only ? LOCK_SH : LOCK_EX) | LOCK_NB);
        if (locked == 0 || errno != EWOULDBLOCK || waited >= options.lock_wait_ms) break;
        ::usleep(50'000);
    }
    if (locked != 0) {
        if (errno == EWOULDBLOCK)
            return bad_input("disk '{}' is in use by another guest{}", path,
                             options.read_only ? " that writes it" : " (a disk is written by one guest at a time)");
        return errno_error("disk '{}': flock", path);
    }
    disk.read_only = options.read_only;
    disk.serial = std::filesystem::path(path).filename().string().substr(0, 20);
    return disk;
}

Result<std::unique_ptr<UringBlock>> UringBlock::open(const std::string& path, const BlockOpenOptions& options) {
    auto disk = open_disk(path, options);
    if (!disk) return std::unexpected(disk.error());
    auto served = serve(*disk, options.depth);
    if (!served) return std::unexpected(Error{served.error().kind, fmt::format("disk '{}': {}", path, served.error().message)});
    return served;
}

namespace {

// The system call for every registration: Debian 12's liburing 2.3
// declares io_uring_register_restrictions and io_uring_enable_rings but
// does not export them.
Result<void> register_ring(int ring, unsigned opcode, const void* argument, unsigned count, const char* what) {
    if (::syscall(__NR_io_uring_register, ring, opcode, argument, count) < 0) return errno_error("{}", what);
    return {};
}

}  // namespace

Result<DiskRing> make_spare_ring(unsigned depth) {
    DiskRing made;
    made.event = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!made.event.valid()) return errno_error("eventfd");
    // Created disabled, so that the restrictions are in place before the
    // first submission; registrations are free until then. Not mapped here:
    // whoever serves the disk maps it.
    made.params.flags = IORING_SETUP_R_DISABLED;
    int ring = io_uring_setup(depth, &made.params);
    if (ring < 0) {
        errno = -ring;
        return errno_error("io_uring_setup");
    }
    made.ring = UniqueFd(ring);
    // One file slot, empty until attach_disk fills it.
    int files[] = {-1};
    if (auto r = register_ring(ring, IORING_REGISTER_FILES, files, 1, "io_uring_register_files"); !r)
        return std::unexpected(r.error());
    // Every completion signals the eventfd. (The "async only" variant is no
    // use here: completions that arrive through task work, such as O_DIRECT
    // and async buffered reads, would never be signalled.)
    int event = made.event.get();
    if (auto r = register_ring(ring, IORING_REGISTER_EVENTFD, &event, 1, "io_uring_register_eventfd"); !r)
        return std::unexpected(r.error());
    io_uring_restriction restrictions[7] = {};
    uint8_t allowed[] = {IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC, IORING_OP_FALLOCATE};
    for (size_t i = 0; i < std::size(allowed); ++i) {
        restrictions[i].opcode = IORING_RESTRICTION_SQE_OP;
        restrictions[i].sqe_op = allowed[i];
    }
    restrictions[4].opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED;
    restrictions[4].sqe_flags = IOSQE_FIXED_FILE;
    restrictions[5].opcode = IORING_RESTRICTION_SQE_FLAGS_REQUIRED;
    restrictions[5].sqe_flags = IOSQE_FIXED_FILE;
    // Giving the file back is allowed: so that the disk's lock goes with
    // the disk, not later with the ring's asynchronous teardown.
    restrictions[6].opcode = IORING_RESTRICTION_REGISTER_OP;
    restrictions[6].register_op = IORING_UNREGISTER_FILES;
    if (auto r = register_ring(ring, IORING_REGISTER_RESTRICTIONS, restrictions, 7, "io_uring restrictions"); !r)
        return std::unexpected(r.error());
    return made;
}

Result<void> attach_disk(const DiskRing& ring, const OpenDisk& disk) {
    // Still disabled, so still free to register: the disk goes into the
    // one slot, and then the restrictions hold for good.
    int files[] = {disk.file.get()};
    io_uring_files_update update{.offset = 0, .resv = 0, .fds = reinterpret_cast<uint64_t>(files)};
    if (auto r = register_ring(ring.ring.get(), IORING_REGISTER_FILES_UPDATE, &update, 1, "io_uring_register_files_update");
        !r)
        return r;
    return register_ring(ring.ring.get(), IORING_REGISTER_ENABLE_RINGS, nullptr, 0, "io_uring enable");
}

Result<DiskRing> make_disk_ring(const OpenDisk& disk, unsigned depth) {
    auto ring = make_spare_ring(depth);
    if (!ring) return ring;
    if (auto r = attach_disk(*ring, disk); !r) return std::unexpected(r.error());
    return ring;
}

Result<std::unique_ptr<UringBlock>> UringBlock::adopt(const OpenDisk& opened, const DiskRing& ring) {
    std::unique_ptr<UringBlock> disk(new UringBlock);
    disk->file_ = UniqueFd(::fcntl(opened.file.get(), F_DUPFD_CLOEXEC, 0));
    disk->event_ = UniqueFd(::fcntl(ring.event.get(), F_DUPFD_CLOEXEC, 0));
    // Its own copy of the ring's descriptor, which io_uring_queue_exit closes.
    int ring_fd = ::fcntl(ring.ring.get(), F_DUPFD_CLOEXEC, 0);
    if (!disk->file_.valid() || !disk->event_.valid() || ring_fd < 0) return errno_error("fcntl");
    disk->size_ = opened.size;
    disk->block_size_ = opened.block_size;
    disk->read_only_ = opened.read_only;
    disk->serial_ = opened.serial;
    io_uring_params params = ring.params;
    if (int r = io_uring_queue_mmap(ring_fd, &params, &disk->ring_); r < 0) {
        ::close(ring_fd);
        errno = -r;
        return errno_error("cannot map the disk's io_uring");
    }
    // What io_uring_queue_init would do after mapping (liburing 2.3 leaves
    // it out of io_uring_queue_mmap): each submission slot names its own
    // entry. And a ring served before starts where the last one stopped;
    // the completions still in it were a dead worker's (the kernel ends a
    // task's requests before the task is gone), of no one's now.
    io_uring_sq& sq = disk->ring_.sq;
    for (unsigned i = 0; i < sq.ring_entries; ++i) sq.array[i] = i;
    sq.sqe_head = sq.sqe_tail = *sq.ktail;
    io_uring_cq_advance(&disk->ring_, io_uring_cq_ready(&disk->ring_));
    disk->ring_ready_ = true;
    disk->ring_owned_ = false;
    return disk;
}

Result<std::unique_ptr<UringBlock>> UringBlock::serve(const OpenDisk& opened, unsigned depth) {
    auto ring = make_disk_ring(opened, depth);
    if (!ring) return std::unexpected(ring.error());
    auto disk = adopt(opened, *ring);
    if (disk) (*disk)->ring_owned_ = true;
    return disk;
}

UringBlock::~UringBlock() {
    if (!ring_ready_) return;
    // Guest memory must not be written after the monitor lets it go.
    drain();
    if (ring_owned_) io_uring_unregister_files(&ring_);
    io_uring_queue_exit(&ring_);
}

io_uring_sqe* UringBlock::next_sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
        // The submission ring is full of queued work: hand it over first.
        io_uring_submit(&ring_);
        sqe = io_uring_get_sqe(&ring_);
    }
    // Still none: the kernel refused the batch; the caller fails the operation.
    if (sqe != nullptr) ++in_flight_;
    return sqe;
}

// Every operation names the disk as registered file 0, as the ring's
// restrictions require.
void UringBlock::on_disk(io_uring_sqe* sqe, uint64_t tag) {
    sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, tag);
}

void UringBlock::read(uint64_t offset, std::span<const iovec> iov, uint64_t tag) {
    io_uring_sqe* sqe = next_sqe();
    if (sqe == nullptr) return failed_.push_back(tag);
    io_uring_prep_readv(sqe, kRegisteredFile, iov.data(), static_cast<unsigned>(iov.size()), offset);
    on_disk(sqe, tag);
}

void UringBlock::write(uint64_t offset, std::span<const iovec> iov, uint64_t tag) {
    io_uring_sqe* sqe = next_sqe();
    if (sqe == nullptr) return failed_.push_back(tag);
    io_uring_prep_writev(sqe, kRegisteredFile, iov.data(), static_cast<unsigned>(iov.size()), offset);
    on_disk(sqe, tag);
}

void UringBlock::flush(uint64_t tag) {
    io_uring_sqe* sqe = next_sqe();
    if (sqe == nullptr) return failed_.push_back(tag);
    io_uring_prep_fsync(sqe, kRegisteredFile, IORING_FSYNC_DATASYNC);
    on_disk(sqe, tag);
}

void UringBlock::discard(uint64_t offset, uint64_t length, uint64_t tag) {
    io_uring_sqe* sqe = next_sqe();
    if (sqe == nullptr) return failed_.push_back(tag);
    io_uring_prep_fallocate(sqe, kRegisteredFile, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                            static_cast<off_t>(offset), static_cast<off_t>(length));
    on_disk(sqe, tag);
}

void UringBlock::write_zeroes(uint64_t offset, uint64_t length, bool may_unmap, uint64_t tag) {
    io_uring_sqe* sqe = next_sqe();
    if (sqe == nullptr) return failed_.push_back(tag);
    int mode = (may_unmap ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE) | FALLOC_FL_KEEP_SIZE;
    io_uring_prep_fallocate(sqe, kRegisteredFile, mode, static_cast<off_t>(offset), static_cast<off_t>(length));
    on_disk(sqe, tag);
}

void UringBlock::submit() {
    if (io_uring_sq_ready(&ring_) > 0) io_uring_submit(&ring_);
    if (!failed_.empty()) {
        uint64_t one = 1;
        [[maybe_unused]] auto written = ::write(event_.get(), &one, sizeof(one));
    }
}

// An operation that found no submission slot completes with -EBUSY at the
// next reap; the device turns it into an I/O error for the guest.
size_t UringBlock::reap(std::span<Completion> done) {
    // The eventfd is never read: it is watched edge-triggered, and every
    // completion posted after this look signals it again.
    size_t count = 0;
    while (!failed_.empty() && count < done.size()) {
        done[count++] = {failed_.back(), -EBUSY};
        failed_.pop_back();
    }
    io_uring_cqe* cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
        if (count == done.size()) break;
        done[count++] = {io_uring_cqe_get_data64(cqe), cqe->res};
        ++seen;
    }
    io_uring_cq_advance(&ring_, seen);
    in_flight_ -= seen;
    return count;
}

void UringBlock::drain() {
    Completion dropped[64];
    submit();
    while (reap(dropped) > 0) {
    }
    while (in_flight_ > 0) {
        io_uring_cqe* cqe;
        if (io_uring_wait_cqe(&ring_, &cqe) < 0) break;
        while (reap(dropped) > 0) {
        }
    }
    failed_.clear();
}

void UringBlock::wait() {
    submit();
    io_uring_cqe* cqe;
    if (in_flight_ > 0 && failed_.empty()) io_uring_wait_cqe(&ring_, &cqe);
}

}  // namespace hospes::backends
