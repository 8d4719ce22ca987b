#include "common/capped_writer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>

namespace hospes {

CappedWriter::CappedWriter(int fd, int previous, const Limits& limits) : fd_(fd), previous_(previous), limits_(limits) {
    struct stat st{};
    if (::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode)) {
        regular_file_ = true;
        size_ = static_cast<uint64_t>(st.st_size);
        // Appending, so that after a rotation the writes start the file
        // again (a shell's `>` opens without O_APPEND).
        int flags = ::fcntl(fd_, F_GETFL);
        if (flags >= 0 && !(flags & O_APPEND)) ::fcntl(fd_, F_SETFL, flags | O_APPEND);
        reader_ = UniqueFd(::open(("/proc/self/fd/" + std::to_string(fd_)).c_str(), O_RDONLY | O_CLOEXEC));
    }
    if (previous_ >= 0 && (::fstat(previous_, &st) != 0 || !S_ISREG(st.st_mode))) previous_ = -1;
    bucket_.set(limits_.bytes_per_second, limits_.burst, TokenBucket::Clock::now());
}

uint64_t CappedWriter::dropped() const {
    std::lock_guard lock(mutex_);
    return dropped_;
}

uint64_t CappedWriter::rotations() const {
    std::lock_guard lock(mutex_);
    return rotations_;
}

void CappedWriter::write(std::span<const uint8_t> bytes) {
    std::lock_guard lock(mutex_);
    if (!bucket_.allows(TokenBucket::Clock::now())) {
        dropped_ += bytes.size();
        unreported_ += bytes.size();
        return;
    }
    if (unreported_ != 0) {
        // Said in the output itself, where the gap is.
        std::string notice = "\r\n[hospes: " + std::to_string(unreported_) +
                             " bytes of output dropped: over the cap of " +
                             std::to_string(limits_.bytes_per_second) + " bytes per second]\r\n";
        unreported_ = 0;
        append({reinterpret_cast<const uint8_t*>(notice.data()), notice.size()});
    }
    bucket_.take(static_cast<double>(bytes.size()));
    append(bytes);
}

void CappedWriter::append(std::span<const uint8_t> bytes) {
    if (regular_file_ && limits_.max_size != 0 && size_ + bytes.size() > limits_.max_size) rotate();
    while (!bytes.empty()) {
        ssize_t n = ::write(fd_, bytes.data(), bytes.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            // Full or closed: what cannot go is dropped, the guest goes on.
            dropped_ += bytes.size();
            return;
        }
        size_ += static_cast<uint64_t>(n);
        bytes = bytes.subspan(static_cast<size_t>(n));
    }
}

void CappedWriter::rotate() {
    ++rotations_;
    if (previous_ >= 0 && reader_.valid() && ::ftruncate(previous_, 0) == 0) {
        loff_t in = 0, out = 0;
        while (in < static_cast<loff_t>(size_)) {
            ssize_t n = ::copy_file_range(reader_.get(), &in, previous_, &out, size_ - static_cast<uint64_t>(in), 0);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
        }
    }
    // Appending (see the constructor), the next write starts it again.
    if (::ftruncate(fd_, 0) == 0) size_ = 0;
}

}  // namespace hospes
