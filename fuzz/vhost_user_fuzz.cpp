// libFuzzer target for the back-ends' side of vhost-user: the input is a
// script of what a hostile front-end might do on one connection: messages
// of any request, flags, size and payload, carrying no fd, the guest's
// memory file, an unsealed file, an eventfd or several; writes into the
// shared guest memory (its rings and buffers); kicks. It is served by the
// real BackendConnection and either hospes-blkback's device (virtio-blk on
// io_uring over a memfd disk) or hospes-netback's (virtio-net on a port of
// the switch, with a second guest port whose frames reach it). A crash, a
// sanitizer report or a hang is a bug; a message the connection refuses
// simply ends the script.
//
// Input layout: one byte, the device (even: virtio-blk, odd: virtio-net),
// then a series of operations (each starts with one byte, op):
//   op % 4 == 0  message: u8 request, u8 flags (bit 0 NEED_REPLY; bit 7: the
//                next byte is sent raw as the flags' low byte, version
//                included), u16 payload length (mod 600), the payload, and
//                u8 fd selector (0 none, 1 guest memory, 2 unsealed file,
//                3 a new eventfd, 4 guest memory and an eventfd, 5 the file
//                the back-end last sent, 6 a sealed 64 KiB file)
//   op % 4 == 1  kick: every eventfd sent so far is written
//   op % 4 == 2  guest memory write: u16 offset, u8 length, the bytes
//   op % 4 == 3  virtio-blk: nothing but letting the back-end run;
//                virtio-net: the other guest sends a packet to this one
//                (u16 length mod 1600, the bytes: a virtio-net header and
//                a frame, whose addresses are set to pass the switch)
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "backends/uring_block.hpp"
#include "common/log.hpp"
#include "devices/virtio/blk.hpp"
#include "devices/virtio/net.hpp"
#include "input.hpp"
#include "netback/switch_port.hpp"
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

using hospes::fuzz::Input;

constexpr hospes::netback::Mac kNetMacs[2] = {{0x02, 0, 0, 0, 0, 0xa}, {0x02, 0, 0, 0, 0, 0xb}};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    spdlog::set_level(spdlog::level::off);  // one line per refused connection would drown the output
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using hospes::netback::Switch;
    auto& f = files();
    std::memset(f.ram, 0, kMemorySize);
    Input in(data, size);
    bool net = in.u8() & 1;

    // virtio-net's world: this guest's port and a peer's on one switch.
    Switch fabric;
    hospes::netback::PortCounters counters[2];
    hospes::UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    CHECK(wake.valid());
    size_t ports[2];
    for (size_t i = 0; i < 2; ++i) {
        hospes::netback::PortIdentity identity;
        identity.mac = kNetMacs[i];
        int fd = i == 0 ? wake.get() : -1;
        ports[i] = fabric.add_guest_port("port" + std::to_string(i), identity, [fd] {
            uint64_t one = 1;
            if (fd >= 0) {
                [[maybe_unused]] auto n = ::write(fd, &one, sizeof(one));
            }
        }, &counters[i]);
    }
    fabric.set_up(ports[1], {true, true, true, true});

    std::unique_ptr<hospes::virtio::Device> device;
    if (net) {
        auto made = hospes::devices::VirtioNet::create(
            std::make_unique<hospes::netback::SwitchPort>(fabric, ports[0], wake.get()), kNetMacs[0]);
        CHECK(made);
        device = std::move(*made);
    } else {
        // The last input's disk may still be locked for a moment: the
        // kernel drops an io_uring's files after the ring is closed, in the
        // background (a CI run trapped here after 19,712 inputs).
        auto backend =
            hospes::backends::UringBlock::open("/proc/self/fd/" + std::to_string(f.disk), {false, false, 64, 5000});
        if (!backend) std::fprintf(stderr, "vhost_user_fuzz: %s\n", backend.error().message.c_str());
        CHECK(backend);
        device = std::make_unique<hospes::devices::VirtioBlk>(std::move(*backend));
    }
    int pair[2];
    CHECK(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
    hospes::vhost_user::Channel front{hospes::UniqueFd(pair[0])};
    auto connection = hospes::vhost_user::BackendConnection::create(
        hospes::vhost_user::Channel(hospes::UniqueFd(pair[1])), std::move(device), "fuzz");
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

    std::vector<uint8_t> peer_buffer(Switch::kMaxPacket);
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
        default:
            if (net) {
                auto packet = in.bytes(in.u16() % 1600);
                if (packet.size() >= Switch::kHeaderSize + 14) {
                    std::memcpy(packet.data() + Switch::kHeaderSize, kNetMacs[0].data(), 6);
                    std::memcpy(packet.data() + Switch::kHeaderSize + 6, kNetMacs[1].data(), 6);
                }
                iovec part{packet.data(), packet.size()};
                (void)fabric.input(ports[1], std::span<const iovec>(&part, 1));
            }
            break;
        }
        if (open) open = run();
        // The peer takes what this guest sent it: nothing larger than its buffer.
        while (size_t got = fabric.take(ports[1], peer_buffer)) CHECK(got <= peer_buffer.size());
    }
    connection->reset();
    return 0;
}
