// libFuzzer target for virtio-net over a real tap: the input is a guest's
// memory (both queues' rings, descriptors and buffers) plus a short script of
// what the guest and the host network do (notify a queue, send a frame into
// the tap, bump an available index, reset). A crash, a sanitizer report, a
// hang, or transmit counters that disagree with the used ring is a bug.
//
// Input layout:
//   byte 0   features: bit 0 MRG_RXBUF, bit 1 GUEST_CSUM, bit 2 GUEST_TSO4/6
//            + ECN, bit 3 EVENT_IDX, bit 4 CSUM + HOST_TSO4/6
//   byte 1   log2 of the rx (low nibble) and tx (high nibble) queue sizes,
//            capped at 256
//   byte 2   number of steps (at most 32), then two bytes per step: op, arg
//   the rest guest memory from address 0 (128 KiB in two adjacent regions)
// Rings at fixed places: rx descriptors 0x0000, available 0x1000, used
// 0x2000; tx descriptors 0x3000, available 0x4000, used 0x5000.
//
// The tap lives in a network namespace of the fuzzer's own; a packet socket
// sends the host's frames into it.
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <vector>

#include "backends/tap.hpp"
#include "common/log.hpp"
#include "devices/virtio/net.hpp"
#include "virtio/queue.hpp"
#include "vmm/guest_memory.hpp"

namespace {

using namespace hospes;
using devices::VirtioNet;
namespace nf = devices::net_feature;

#define CHECK(condition)                    \
    do {                                    \
        if (!(condition)) __builtin_trap(); \
    } while (0)

constexpr uint64_t kMemory = 0x20000;
constexpr uint64_t kRing[2] = {0x0000, 0x3000};  // rx, tx
constexpr int kMaxSteps = 32;

struct Harness {
    std::optional<GuestMemory> memory;
    std::unique_ptr<VirtioNet> device;
    int tap_fd = -1;
    UniqueFd sender;
    int ifindex = 0;
    std::vector<virtio::Queue> queues;
    int failures = 0;
    uint64_t tx_base = 0;  // transmit chains counted before this activation
};

uint64_t tx_total(const devices::NetStats& stats) { return stats.tx_packets + stats.tx_malformed + stats.tx_errors; }

Harness& harness() {
    static Harness* h = [] {
        auto* made = new Harness;
        if (::unshare(CLONE_NEWNET) != 0) {
            // Not a failure of the device: this host cannot run the target
            // (exit 77, which ctest reports as skipped).
            std::perror("net_fuzz: skipped: unshare(CLONE_NEWNET) (needs root)");
            std::_Exit(77);
        }
        std::ofstream("/proc/sys/net/ipv6/conf/default/disable_ipv6") << "1";
        std::pair<uint64_t, uint64_t> ranges[] = {{0, kMemory / 2}, {kMemory / 2, kMemory / 2}};
        made->memory.emplace(std::move(*GuestMemory::create(ranges)));
        auto tap = backends::Tap::open("fuzz0", "");
        if (!tap) {
            std::fprintf(stderr, "net_fuzz: skipped: %s\n", tap.error().message.c_str());
            std::_Exit(77);
        }
        made->device = std::move(*VirtioNet::create(std::make_unique<backends::Tap>(std::move(*tap)), std::nullopt));
        made->tap_fd = made->device->backend_events()[0].fd;
        made->ifindex = static_cast<int>(::if_nametoindex("fuzz0"));
        // Protocol 0: this socket only sends, so it never queues what the
        // device transmits.
        made->sender = UniqueFd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
        CHECK(made->sender.valid() && made->ifindex != 0);
        // Jumbo frames from the host side too, for mergeable buffers.
        ifreq request{};
        std::strcpy(request.ifr_name, "fuzz0");
        request.ifr_mtu = 9000;
        UniqueFd control(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        ::ioctl(control.get(), SIOCSIFMTU, &request);
        return made;
    }();
    return *h;
}

void send_frame(Harness& h, size_t size, uint8_t seed) {
    std::vector<uint8_t> frame(size, seed);
    std::memset(frame.data(), 0xff, 6);
    frame[6] = 0x02;
    frame[12] = 0x88;
    frame[13] = 0xb5;
    sockaddr_ll to{};
    to.sll_family = AF_PACKET;
    to.sll_ifindex = h.ifindex;
    to.sll_halen = 6;
    std::memset(to.sll_addr, 0xff, 6);
    ::sendto(h.sender.get(), frame.data(), frame.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to));
}

bool start(Harness& h, uint8_t feature_bits, uint8_t sizes) {
    uint64_t features = virtio::kFeatureVersion1 | nf::kMac | nf::kStatus;
    if (feature_bits & 1) features |= nf::kMrgRxbuf;
    if (feature_bits & 2) features |= nf::kGuestCsum;
    if (feature_bits & 4) features |= nf::kGuestTso4 | nf::kGuestTso6 | nf::kGuestEcn;
    if (feature_bits & 8) features |= virtio::kFeatureEventIndex;
    if (feature_bits & 16) features |= nf::kCsum | nf::kHostTso4 | nf::kHostTso6;
    h.queues.clear();
    for (int q = 0; q < 2; ++q) {
        auto& queue = h.queues.emplace_back(VirtioNet::kQueueSize);
        unsigned log2 = std::min((q == 0 ? sizes : sizes >> 4) & 15, 8);
        queue.set_size(static_cast<uint16_t>(1u << log2));
        queue.set_descriptor_table(kRing[q]);
        queue.set_driver_area(kRing[q] + 0x1000);
        queue.set_device_area(kRing[q] + 0x2000);
        queue.set_event_idx(feature_bits & 8);
        CHECK(queue.activate(*h.memory));
    }
    h.tx_base = tx_total(h.device->stats());
    virtio::ActiveQueues active{&*h.memory, &h.queues, [] {}, [&h](const Error&) { ++h.failures; }, {}, -1};
    return h.device->activate(features, std::move(active)).has_value();
}

uint16_t used_index(Harness& h, int q) {
    uint16_t value;
    std::memcpy(&value, h.memory->slice(kRing[q] + 0x2000 + 2, 2).data(), 2);
    return value;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    spdlog::set_level(spdlog::level::off);  // the device's rate-limited warnings
    harness();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 3) return 0;
    Harness& h = harness();
    h.device->reset();
    // Frames left in the tap by the previous input would make this one
    // irreproducible.
    std::vector<uint8_t> drain(70000);
    while (::read(h.tap_fd, drain.data(), drain.size()) > 0) {
    }
    int steps = std::min<int>(data[2], kMaxSteps);
    size_t image = 3 + 2 * static_cast<size_t>(steps);
    if (size < image) return 0;
    for (const auto& region : h.memory->regions()) std::memset(region.host.data(), 0, region.host.size());
    size_t copied = std::min<size_t>(size - image, kMemory);
    for (size_t done = 0; done < copied;) {
        auto to = h.memory->slice(done, std::min<size_t>(copied - done, kMemory / 2 - done % (kMemory / 2)));
        std::memcpy(to.data(), data + image + done, to.size());
        done += to.size();
    }
    h.failures = 0;
    if (!start(h, data[0], data[1])) return 0;

    for (int step = 0; step < steps; ++step) {
        uint8_t op = data[3 + 2 * step], arg = data[4 + 2 * step];
        uint64_t tx_before = tx_total(h.device->stats());
        int failures = h.failures;
        switch (op % 7) {
        case 0: h.device->queue_notify(VirtioNet::kTxQueue); break;
        case 1: h.device->queue_notify(VirtioNet::kRxQueue); break;
        case 2: send_frame(h, 14 + size_t{arg} * 35, arg); break;
        case 3: h.device->backend_ready(0); break;
        case 4: h.device->backend_ready(1); break;
        case 5: {  // the guest publishes more (or fewer) available entries
            uint64_t at = kRing[arg >> 7] + 0x1000 + 2;
            uint16_t index;
            std::memcpy(&index, h.memory->slice(at, 2).data(), 2);
            index = static_cast<uint16_t>(index + (arg & 0x7f));
            std::memcpy(h.memory->slice(at, 2).data(), &index, 2);
            break;
        }
        case 6:
            h.device->reset();
            h.failures = 0;
            failures = 0;
            if (!start(h, data[0], data[1])) return 0;
            continue;
        }
        // Every transmit chain the device returned was sent, dropped as
        // malformed, or refused by the tap: exactly one of the three. Only
        // checked after a step that ran transmit alone and returned chains:
        // receive buffers may lie over the used ring and overwrite it.
        uint64_t tx_after = tx_total(h.device->stats());
        if (op % 7 == 0 && h.failures == failures && tx_after != tx_before)
            CHECK(static_cast<uint16_t>(tx_after - h.tx_base) == used_index(h, 1));
    }
    h.device->reset();
    return 0;
}
