// libFuzzer target for hospes-blkback's side of vhost-user: the input is a
// script of what a hostile front-end might do on one connection: messages
// of any request, flags, size and payload, carrying no fd, the guest's
// memory file, an unsealed file, an eventfd or several; writes into the
// shared guest memory (its rings and buffers); kicks. It is served by the
// real BackendConnection and virtio-blk on io_uring over a memfd disk, as
// in hospes-blkback. A crash, a sanitizer report or a hang is a bug; a
// message the connection refuses simply ends the script.
//
// Input layout, a series of operations (each starts with one byte, op):
//   op % 4 == 0  message: u8 request, u8 flags (bit 0 NEED_REPLY; bit 7: the
//                next byte is sent raw as the flags' low byte, version
//                included), u16 payload length (mod 600), the payload, and
//                u8 fd selector (0 none, 1 guest memory, 2 unsealed file,
//                3 a new eventfd, 4 guest memory and an eventfd, 5 the file
//                the back-end last sent, 6 a sealed 64 KiB file)
//   op % 4 == 1  kick: every eventfd sent so far is written
//   op % 4 == 2  guest memory write: u16 offset, u8 length, the bytes
//   op % 4 == 3  nothing but letting the back-end run
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "backends/uring_block.hpp"
#include "common/log.hpp"
#include "devices/virtio/blk.hpp"
#include "vhost_user/backend.hpp"

namespace {

#define CHECK(condition)                    \
    do {                                    \
        if (!(condition)) __builtin_trap(); \
    } while (0)

constexpr uint64_t kDiskSize = 256 * 1024;
constexpr uint64_t kMemorySize = 1 << 20;

int sealed_file(const char* name, uint64_t size) {
    int fd = ::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    CHECK(fd >= 0 && ::ftruncate(fd, static_cast<off_t>(size)) == 0);
    CHECK(::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0);
    return fd;
}

// Process-wide: the disk, the guest memory (mapped here too, to write
// rings into) and an unsealed file.
struct Files {
    int disk = ::memfd_create("vhost-user-fuzz-disk", MFD_CLOEXEC);
    int memory = sealed_file("vhost-user-fuzz-ram", kMemorySize);
    int unsealed = ::memfd_create("vhost-user-fuzz-unsealed", MFD_CLOEXEC);
    int small = sealed_file("vhost-user-fuzz-small", 64 * 1024);
    uint8_t* ram = nullptr;
    Files() {
        CHECK(disk >= 0 && unsealed >= 0 && ::ftruncate(disk, kDiskSize) == 0 &&
              ::ftruncate(unsealed, kMemorySize) == 0);
        void* p = ::mmap(nullptr, kMemorySize, PROT_READ | PROT_WRITE, MAP_SHARED, memory, 0);
        CHECK(p != MAP_FAILED);
        ram = static_cast<uint8_t*>(p);
    }
};
Files& files() {
    static Files f;
    return f;
}

class Input {
public:
    Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
    bool empty() const { return size_ == 0; }
    uint8_t u8() { return size_ ? (--size_, *data_++) : 0; }
    uint16_t u16() { return static_cast<uint16_t>(u8() | (u8() << 8)); }
    std::vector<uint8_t> bytes(size_t n) {
        n = std::min(n, size_);
        std::vector<uint8_t> out(data_, data_ + n);
        data_ += n;
        size_ -= n;
        return out;
    }

private:
    const uint8_t* data_;
    size_t size_;
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    spdlog::set_level(spdlog::level::off);  // one line per refused connection would drown the output
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto& f = files();
    std::memset(f.ram, 0, kMemorySize);
    auto backend = hospes::backends::UringBlock::open("/proc/self/fd/" + std::to_string(f.disk), {false, false, 64});
    CHECK(backend);
    int pair[2];
    CHECK(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
    hospes::vhost_user::Channel front{hospes::UniqueFd(pair[0])};
    auto connection = hospes::vhost_user::BackendConnection::create(
        hospes::vhost_user::Channel(hospes::UniqueFd(pair[1])),
        std::make_unique<hospes::devices::VirtioBlk>(std::move(*backend)), "fuzz");
    CHECK(connection);
    CHECK(::fcntl(front.fd(), F_SETFL, O_NONBLOCK) == 0);

    std::vector<hospes::UniqueFd> eventfds;
    hospes::UniqueFd received;  // the last fd the back-end sent (an inflight region)
    // Runs the back-end while it has work; false once it ended the connection.
    auto run = [&]() {
        for (int rounds = 0; rounds < 64; ++rounds) {
            pollfd p{(*connection)->fd(), POLLIN, 0};
            if (::poll(&p, 1, 0) <= 0) break;
            if (!(*connection)->process()) return false;
        }
        // Replies are read and dropped, keeping any fd they carry.
        for (;;) {
            auto reply = front.receive();
            if (!reply || !*reply) break;
            for (auto& fd : (*reply)->fds) received = std::move(fd);
        }
        return true;
    };

    Input in(data, size);
    bool open = true;
    while (open && !in.empty()) {
        uint8_t op = in.u8();
        switch (op % 4) {
        case 0: {
            uint32_t request = in.u8();
            uint8_t flag_byte = in.u8();
            uint32_t flags = (flag_byte & 0x80) ? in.u8() : (1u | ((flag_byte & 1) ? 8u : 0u));
            auto payload = in.bytes(in.u16() % 600);
            std::vector<int> fds;
            switch (in.u8() % 7) {
            case 1: fds = {f.memory}; break;
            case 2: fds = {f.unsealed}; break;
            case 3:
                eventfds.emplace_back(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
                fds = {eventfds.back().get()};
                break;
            case 4:
                eventfds.emplace_back(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
                fds = {f.memory, eventfds.back().get()};
                break;
            case 5:
                if (received.valid()) fds = {received.get()};
                break;
            case 6: fds = {f.small}; break;
            default: break;
            }
            // The raw header, so that flags may carry any version.
            hospes::vhost_user::Header header{request, flags, static_cast<uint32_t>(payload.size())};
            std::vector<uint8_t> bytes(reinterpret_cast<uint8_t*>(&header),
                                       reinterpret_cast<uint8_t*>(&header) + sizeof(header));
            bytes.insert(bytes.end(), payload.begin(), payload.end());
            iovec iov{bytes.data(), bytes.size()};
            alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 2)] = {};
            msghdr msg{};
            msg.msg_iov = &iov;
            msg.msg_iovlen = 1;
            if (!fds.empty()) {
                msg.msg_control = control;
                msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
                cmsghdr* c = CMSG_FIRSTHDR(&msg);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
                std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
            }
            if (::sendmsg(front.fd(), &msg, MSG_NOSIGNAL) < 0) open = false;
            break;
        }
        case 1:
            for (auto& fd : eventfds) {
                uint64_t one = 1;
                [[maybe_unused]] auto n = ::write(fd.get(), &one, sizeof(one));
            }
            break;
        case 2: {
            uint16_t offset = in.u16();
            auto bytes = in.bytes(in.u8());
            if (!bytes.empty()) std::memcpy(f.ram + offset, bytes.data(), bytes.size());
            break;
        }
        default: break;
        }
        if (open) open = run();
    }
    connection->reset();
    return 0;
}
