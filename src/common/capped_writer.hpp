// Output that a guest controls (its console) or provokes (the monitor's
// warnings about what it did), written with a cap, so that no guest can
// fill the host's disk or keep it busy writing: at most `rate` bytes per
// second on average after a burst, and a file of at most `max_size` bytes,
// which is then rotated. Rotation needs no path, only descriptors opened
// beforehand (a jailed monitor has nothing else): the full file is copied
// into the previous generation's file, which is overwritten, and starts
// again empty; on disk there are never more than two files of `max_size`.
// What the cap holds back is dropped and counted; a line in the output says
// so once writing resumes.
#pragma once

#include <cstdint>
#include <mutex>
#include <span>

#include "common/token_bucket.hpp"
#include "common/unique_fd.hpp"

namespace hospes {

class CappedWriter {
public:
    struct Limits {
        uint64_t bytes_per_second = 64 * 1024;
        uint64_t burst = 1 << 20;
        uint64_t max_size = 16 << 20;  // of a regular file; 0: no rotation
    };

    // Writes to `fd`; when it is a regular file, rotates into `previous`
    // (another regular file; -1: the file is only emptied). Neither is
    // owned. (A descriptor that reads the file, for the copy, is opened
    // here, through /proc: made before any jail.)
    CappedWriter(int fd, int previous, const Limits& limits);
    // Thread-safe. Never blocks on the cap: what does not fit is dropped.
    void write(std::span<const uint8_t> bytes);
    uint64_t dropped() const;
    uint64_t rotations() const;

private:
    void append(std::span<const uint8_t> bytes);  // with mutex_ held
    void rotate();                                // with mutex_ held

    int fd_, previous_;
    UniqueFd reader_;  // the same file, readable
    Limits limits_;
    bool regular_file_ = false;
    mutable std::mutex mutex_;
    TokenBucket bucket_;
    uint64_t size_ = 0;        // of the current file
    uint64_t dropped_ = 0;     // in all
    uint64_t unreported_ = 0;  // dropped since the last notice
    uint64_t rotations_ = 0;
};

}  // namespace hospes
