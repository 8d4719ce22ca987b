// net_bench: virtio-net transmit rate against a plain loop on the same tap.
//
// In a network namespace of its own, one tap. For 64- and 1500-byte frames:
//   device  the fake driver (tests/support/fake_driver.hpp) makes 32 chains
//           available (a 12-byte header and the frame, two buffers each) and
//           notifies the transmit queue; timed is the device's work for the
//           notification (pop, zero-copy writev to the tap, push, interrupt
//           decision), not the fake guest's ring writing;
//   plain   the same 32 header+frame writev()s to the same tap fd in a loop.
// Each round sends --packets frames each way; rounds alternate between the
// two so both see the same noise. Printed: median packets per second of each
// and device/plain. The frames are broadcast, of an ethertype nothing
// handles: the host stack drops them right after the tap.
//
// Usage: net_bench [--rounds N] [--packets M]   (defaults 9, 64000)
// Exit status 0 after the figures, or when no tap can be made here (one line
// says so); 1 when sending failed; 2 on bad arguments.
#include <fcntl.h>
#include <sched.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "backends/tap.hpp"
#include "common/log.hpp"
#include "devices/virtio/net.hpp"
#include "support/fake_driver.hpp"

namespace {

using namespace hospes;
using Clock = std::chrono::steady_clock;
constexpr size_t kBatch = 32;

std::vector<uint8_t> make_frame(size_t size) {
    std::vector<uint8_t> frame(size, 0x5a);
    std::memset(frame.data(), 0xff, 6);
    frame[6] = 0x02;
    frame[12] = 0x88;
    frame[13] = 0xb5;
    return frame;
}

double median(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    return values[values.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    int rounds = 9;
    size_t packets = 64000;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--rounds" && i + 1 < argc)
            rounds = std::max(1, std::atoi(argv[++i]));
        else if (arg == "--packets" && i + 1 < argc)
            packets = std::max<size_t>(kBatch, std::strtoul(argv[++i], nullptr, 10)) / kBatch * kBatch;
        else {
            std::fprintf(stderr, "usage: net_bench [--rounds N] [--packets M]\n");
            return 2;
        }
    }
    spdlog::set_level(spdlog::level::warn);
    if (::unshare(CLONE_NEWNET) != 0) {
        std::printf("net_bench: skipped: cannot make a network namespace (%s)\n", std::strerror(errno));
        return 0;
    }
    std::ofstream("/proc/sys/net/ipv6/conf/default/disable_ipv6") << "1";
    auto tap = backends::Tap::open("bench0", "");
    if (!tap) {
        std::printf("net_bench: skipped: %s\n", tap.error().message.c_str());
        return 0;
    }
    auto made = devices::VirtioNet::create(std::make_unique<backends::Tap>(std::move(*tap)), std::nullopt);
    if (!made) return 1;
    auto& net = **made;
    const int tap_fd = net.backend_events()[0].fd;
    test_support::FakeDriver driver(net);
    if (!driver.start(net.features() | virtio::kFeatureVersion1, 256)) return 1;

    std::printf("net_bench: virtio-net tx to a tap, %zu frames per round, batches of %zu, %d rounds (medians)\n",
                packets, kBatch, rounds);
    std::printf("%-8s %16s %16s %8s\n", "frame", "device pps", "plain pps", "ratio");
    for (size_t frame_size : {size_t{64}, size_t{1500}}) {
        auto frame = make_frame(frame_size);
        devices::NetHeader header{};
        // The fake guest's buffers: kBatch header+frame pairs, written once.
        std::vector<std::pair<uint64_t, uint64_t>> slots;
        for (size_t i = 0; i < kBatch; ++i) {
            uint64_t h = driver.alloc(sizeof(header)), f = driver.alloc(frame.size());
            driver.put(h, header);
            driver.fill(f, frame);
            slots.emplace_back(h, f);
        }
        std::vector<double> device_pps, plain_pps;
        for (int round = 0; round < rounds; ++round) {
            uint64_t sent_before = net.stats().tx_packets;
            Clock::duration device_time{};
            for (size_t done = 0; done < packets; done += kBatch) {
                for (auto [h, f] : slots)
                    driver.add_chain(1, {{h, sizeof(header), false}, {f, static_cast<uint32_t>(frame.size()), false}});
                auto t0 = Clock::now();
                driver.kick(1);
                device_time += Clock::now() - t0;
                while (driver.next_used(1)) {
                }
            }
            if (net.stats().tx_packets - sent_before != packets) {
                std::fprintf(stderr, "net_bench: the device sent %lu of %zu frames\n",
                             static_cast<unsigned long>(net.stats().tx_packets - sent_before), packets);
                return 1;
            }
            device_pps.push_back(static_cast<double>(packets) / std::chrono::duration<double>(device_time).count());

            iovec parts[2] = {{&header, sizeof(header)}, {frame.data(), frame.size()}};
            auto t0 = Clock::now();
            for (size_t done = 0; done < packets; ++done)
                if (::writev(tap_fd, parts, 2) < 0) {
                    std::perror("net_bench: writev");
                    return 1;
                }
            plain_pps.push_back(static_cast<double>(packets) / std::chrono::duration<double>(Clock::now() - t0).count());
        }
        double d = median(device_pps), p = median(plain_pps);
        std::printf("%-8zu %16.0f %16.0f %8.3f\n", frame_size, d, p, d / p);
    }
    return 0;
}
