// netback_bench: hospes-netback's forwarding cost against a plain loop
// writing the same frames to a tap, in one run.
//
// In a network namespace of its own, hospes-netback serves two ports, a and
// b, with an uplink tap; this process is both guests: the monitor's
// vhost-user front-end (VhostUserDevice, kick and call eventfds as KVM's
// would be) and the test suite's fake driver over shared memory. The
// back-end's worker is another process, as in production. For 64- and
// 1500-byte frames:
//   guest -> tap    guest a sends to a host learned behind the uplink (the
//                   switch forwards to the tap alone);
//   guest -> guest  guest a sends to guest b's MAC; b's receive buffers are
//                   given back as they fill;
//   plain           the same header+frame writev()s to a tap of this
//                   process's own, in a loop.
// Frames go in batches of 32 (one kick each), --packets a round, rounds
// alternating between the three. The figure is packets per CPU-second of
// every process involved: the worker's CPU clock plus this thread's (the
// fake guests' ring work and the front-end's kicks), against the plain
// loop's thread CPU; medians over rounds and the ratios (goal for guest ->
// tap: 0.85). The frames are of an ethertype nothing handles: the host
// stack drops them right after the tap.
// Each batch is a round trip between two processes (a kick wakes the
// worker, its interrupt wakes the guest), whose wake-ups on two CPUs cost
// this PVM host dearly (blkback_bench measures them): so the figures come
// twice, unpinned, and with the worker and this process on one CPU.
//
// Usage: netback_bench [--rounds N] [--packets M] [--batch B]   (defaults 9, 32000, 32;
// B at most 128: two descriptors a frame in a 256-entry ring)
// Root (a network namespace, taps); without, one line says it is skipped.
#include <linux/virtio_ids.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "backends/tap.hpp"
#include "common/log.hpp"
#include "devices/virtio/net.hpp"
#include "support/fake_driver.hpp"
#include "support/net_namespace.hpp"
#include "support/wired_device.hpp"

namespace {

using namespace hospes;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test_support::FakeDriver;
size_t kBatch = 32;  // frames per kick (--batch)
constexpr uint16_t kRx = 0, kTx = 1;
constexpr uint8_t kMacA[6] = {0x02, 0, 0, 0, 0, 0xa}, kMacB[6] = {0x02, 0, 0, 0, 0, 0xb};
constexpr uint8_t kHost[6] = {0x02, 0x99, 0, 0, 0, 1};

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "netback_bench: %s\n", what.c_str());
    std::exit(1);
}

std::vector<uint8_t> make_frame(size_t size, const uint8_t* to, const uint8_t* from) {
    std::vector<uint8_t> frame(size, 0x5a);
    std::memcpy(frame.data(), to, 6);
    std::memcpy(frame.data() + 6, from, 6);
    frame[12] = 0x88;
    frame[13] = 0xb5;
    return frame;
}

double cpu_seconds(clockid_t clock) {
    timespec ts{};
    ::clock_gettime(clock, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

void pin(pid_t pid, int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (cpu < 0) {
        for (int i = 0; i < CPU_SETSIZE; ++i) CPU_SET(i, &set);
    } else {
        CPU_SET(cpu, &set);
    }
    ::sched_setaffinity(pid, sizeof(set), &set);
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// One guest: the front-end, its wiring and the fake driver.
struct Guest {
    std::unique_ptr<vhost_user::VhostUserDevice> device;
    std::unique_ptr<test_support::WiredDevice> wired;
    std::unique_ptr<FakeDriver> driver;
    std::vector<uint64_t> rx_buffers;  // by head

    ~Guest() {
        driver.reset();
        wired.reset();
        device.reset();
    }
    void connect(const fs::path& socket) {
        auto made = vhost_user::VhostUserDevice::connect(socket.string(), VIRTIO_ID_NET, 8, 2,
                                                         devices::VirtioNet::kQueueSize);
        if (!made) die("vhost-user connect: " + made.error().message);
        device = std::move(*made);
        wired = std::make_unique<test_support::WiredDevice>(*device);
        driver = std::make_unique<FakeDriver>(*wired);
        // No offloads, no EVENT_IDX (the fake driver keeps no used_event).
        uint64_t features = virtio::kFeatureVersion1 | devices::net_feature::kMac;
        if (auto r = driver->start(features, devices::VirtioNet::kQueueSize); !r) die("start: " + r.error().message);
    }
    // Receive buffers for every ring entry, made available once.
    void post_rx() {
        rx_buffers.assign(devices::VirtioNet::kQueueSize, 0);
        for (unsigned i = 0; i < devices::VirtioNet::kQueueSize; ++i) {
            uint64_t at = driver->alloc(2048);
            auto head = driver->add_chain(kRx, {{at, 2048, true}}, false);
            if (!head) die("receive ring full");
            rx_buffers[*head] = at;
        }
        driver->publish(kRx);
        driver->kick(kRx);
    }
    // Waits up to 100 ms for an interrupt.
    void wait() {
        pollfd p{wired->call(), POLLIN, 0};
        if (::poll(&p, 1, 100) == 1) {
            uint64_t value;
            [[maybe_unused]] auto n = ::read(wired->call(), &value, sizeof(value));
        }
    }
};

class Backend {
public:
    explicit Backend(fs::path dir) : dir_(std::move(dir)) {}
    ~Backend() {
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    void start(const std::string& binary) {
        pid_ = ::fork();
        if (pid_ < 0) die("fork");
        if (pid_ == 0) {
            std::string log = (dir_ / "netback.log").string();
            int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            ::dup2(fd, 2);
            std::vector<std::string> args = {binary, "--socket-dir", dir_.string(), "--port", "a,mac=02:00:00:00:00:0a",
                                             "--port", "b,mac=02:00:00:00:00:0b", "--uplink", "tap=nbb0"};
            std::vector<char*> argv;
            for (auto& a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            ::execv(binary.c_str(), argv.data());
            ::_exit(127);
        }
        for (int i = 0; i < 1000 && !fs::exists(dir_ / "control"); ++i) std::this_thread::sleep_for(5ms);
        if (!fs::exists(dir_ / "control")) die("hospes-netback did not start");
    }
    pid_t worker() const {
        for (int i = 0; i < 1000; ++i) {
            std::ifstream children("/proc/" + std::to_string(pid_) + "/task/" + std::to_string(pid_) + "/children");
            pid_t pid = 0;
            if (children >> pid && pid > 0) return pid;
            std::this_thread::sleep_for(5ms);
        }
        die("hospes-netback has no worker");
    }

private:
    fs::path dir_;
    pid_t pid_ = -1;
};

// The transmit side of one round: `packets` frames from `from` in batches,
// each batch's chains written, published, kicked and waited for; `to`
// (when given) takes them and gives its buffers back.
struct TxSlots {
    std::vector<std::pair<uint64_t, uint64_t>> slots;  // header, frame
    size_t frame_size = 0;
};
TxSlots make_slots(Guest& guest, const std::vector<uint8_t>& frame) {
    TxSlots t;
    t.frame_size = frame.size();
    devices::NetHeader header{};
    for (size_t i = 0; i < kBatch; ++i) {
        uint64_t h = guest.driver->alloc(sizeof(header)), f = guest.driver->alloc(frame.size());
        guest.driver->put(h, header);
        guest.driver->fill(f, frame);
        t.slots.emplace_back(h, f);
    }
    return t;
}

// The CPU seconds of the worker and of this thread (the guests).
struct Cpu {
    double worker = 0, guests = 0;
    double total() const { return worker + guests; }
};
Cpu forward(Guest& from, Guest* to, TxSlots& tx, size_t packets, clockid_t worker_clock) {
    double worker0 = cpu_seconds(worker_clock), guests0 = cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
    size_t received = 0;
    for (size_t done = 0; done < packets; done += kBatch) {
        for (auto [h, f] : tx.slots)
            from.driver->add_chain(kTx, {{h, sizeof(devices::NetHeader), false},
                                         {f, static_cast<uint32_t>(tx.frame_size), false}},
                                   false);
        from.driver->publish(kTx);
        from.driver->kick(kTx);
        size_t sent = 0;
        auto deadline = std::chrono::steady_clock::now() + 5s;
        while (sent < kBatch || (to != nullptr && received < done + kBatch)) {
            if (std::chrono::steady_clock::now() > deadline) die("frames did not arrive");
            bool any = false;
            while (from.driver->next_used(kTx)) ++sent, any = true;
            if (to != nullptr) {
                bool given = false;
                while (auto used = to->driver->next_used(kRx)) {
                    ++received;
                    to->driver->make_available(kRx, static_cast<uint16_t>(used->id), false);
                    given = any = true;
                }
                if (given) {
                    to->driver->publish(kRx);
                    to->driver->kick(kRx);
                }
            }
            if (!any) {
                from.wait();
                if (to != nullptr) to->wait();
            }
        }
    }
    return {cpu_seconds(worker_clock) - worker0, cpu_seconds(CLOCK_THREAD_CPUTIME_ID) - guests0};
}

}  // namespace

int main(int argc, char** argv) {
    int rounds = 9;
    size_t packets = 32000;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--rounds" && i + 1 < argc)
            rounds = std::max(1, std::atoi(argv[++i]));
        else if (arg == "--batch" && i + 1 < argc)
            kBatch = std::clamp<size_t>(std::strtoul(argv[++i], nullptr, 10), 1, 128);
        else if (arg == "--packets" && i + 1 < argc)
            packets = std::strtoul(argv[++i], nullptr, 10);
        else {
            std::fprintf(stderr, "usage: netback_bench [--rounds N] [--packets M] [--batch B]\n");
            return 2;
        }
    }
    packets = std::max(kBatch, packets) / kBatch * kBatch;
    spdlog::set_level(spdlog::level::warn);
    if (auto why = test_support::private_network(); !why.empty()) {
        std::printf("netback_bench: skipped: %s\n", why.c_str());
        return 0;
    }
    std::ofstream("/proc/sys/net/ipv6/conf/default/disable_ipv6") << "1";
    fs::path dir = fs::temp_directory_path() / ("hospes-netback-bench-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    int status = 0;
    {
        Backend backend(dir);
        backend.start(HOSPES_NETBACK);
        clockid_t worker_clock;
        if (::clock_getcpuclockid(backend.worker(), &worker_clock) != 0) die("clock_getcpuclockid");
        auto plain_tap = backends::Tap::open("plain0", "");
        if (!plain_tap) die(plain_tap.error().message);
        Guest a, b;
        a.connect(dir / "a.sock");
        b.connect(dir / "b.sock");
        b.post_rx();
        // The host behind the uplink, learned from one frame it sends.
        {
            // Closed at once: a packet socket would get a copy of every frame.
            test_support::PacketSocket host("nbb0");
            if (!host.valid() || !host.send(make_frame(64, kMacA, kHost))) die("cannot send on the uplink");
            std::this_thread::sleep_for(100ms);
        }
        while (a.driver->next_used(kRx)) {
        }

        std::printf("netback_bench: guests' frames through hospes-netback, %zu a round, batches of %zu, %d rounds; "
                    "packets per CPU-second of the worker and the guests (medians)\n",
                    packets, kBatch, rounds);
        std::printf("%-8s %-6s %14s %14s %14s %10s %10s\n", "cpus", "frame", "guest->tap", "guest->guest",
                    "plain tap", "tap/plain", "guest/plain");
        pid_t worker = backend.worker();
        for (bool pinned : {false, true}) {
            pin(0, pinned ? 0 : -1);
            pin(worker, pinned ? 0 : -1);
            for (size_t size : {size_t{64}, size_t{1500}}) {
                auto to_host = make_slots(a, make_frame(size, kHost, kMacA));
                auto to_b = make_slots(a, make_frame(size, kMacB, kMacA));
                auto frame = make_frame(size, kHost, kMacA);
                devices::NetHeader header{};
                std::vector<double> tap_pps, guest_pps, plain_pps, tap_worker_ns, tap_guest_ns;
                for (int round = 0; round < rounds; ++round) {
                    auto cpu = forward(a, nullptr, to_host, packets, worker_clock);
                    tap_pps.push_back(double(packets) / cpu.total());
                    tap_worker_ns.push_back(cpu.worker * 1e9 / double(packets));
                    tap_guest_ns.push_back(cpu.guests * 1e9 / double(packets));
                    guest_pps.push_back(double(packets) / forward(a, &b, to_b, packets, worker_clock).total());
                    iovec parts[2] = {{&header, sizeof(header)}, {frame.data(), frame.size()}};
                    double t0 = cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
                    for (size_t i = 0; i < packets; ++i)
                        if (::writev(plain_tap->fd(), parts, 2) < 0) die("writev");
                    plain_pps.push_back(double(packets) / (cpu_seconds(CLOCK_THREAD_CPUTIME_ID) - t0));
                }
                double t = median(tap_pps), g = median(guest_pps), p = median(plain_pps);
                std::printf("%-8s %-6zu %14.0f %14.0f %14.0f %10.3f %10.3f\n", pinned ? "one" : "any", size, t, g, p,
                            t / p, g / p);
                std::printf("         guest->tap per packet: worker %.0f ns, guest side %.0f ns; plain %.0f ns\n",
                            median(tap_worker_ns), median(tap_guest_ns), 1e9 / p);
            }
        }
    }
    fs::remove_all(dir);
    return status;
}
