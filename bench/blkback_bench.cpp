// blkback_bench: the host benchmarks of the block driver domain (issue 8).
// The test suite's fake driver drives the monitor's own vhost-user
// front-end (VhostUserDevice) over shared memfd guest memory; the queues are
// served by hospes-blkback's confined worker, another process. Three parts:
//
// 1. throughput: 4 KiB random reads at queue depth 32 from a file in the
//    page cache, in requests per CPU second of both processes together
//    (this process, which is the fake guest and the front-end, plus the
//    blkback worker and its supervisor), beside today's in-monitor path (the
//    fake driver calling VirtioBlk and its io_uring in this process, as
//    blk_bench does), the in-monitor path with the monitor's I/O thread
//    woken by an eventfd (as `hospes run` really runs it), and a plain
//    io_uring loop: interleaved rounds on the same file with the same
//    offsets, medians and the ratios to plain. Also the CPU cost of an
//    eventfd ping-pong between two processes, the floor of a kick and an
//    interrupt.
// 2. reconnect: with requests flowing at queue depth 1, the worker is
//    SIGKILLed (its supervisor starts another, the front-end reconnects):
//    time from the kill to the first request completed after it, median
//    and worst; then a few kills of the whole back-end (the supervisor),
//    started again at once as the unit test does.
// 3. memory: the worker's resident memory with no, 1 and 20 guest
//    connections (each its own front-end, guest memory and I/O), and what
//    one connection costs, by kind of mapping.
//
// Usage: blkback_bench [--rounds N] [--requests M] [--file PATH]
//                      [--only plain|monitor|thread|blkback] [--kills K]
//                      [--backend-kills B] [--spacing-ms MS]
//                      [--connections C] [--part throughput|reconnect|memory]...
//                      [--pin SELF_CPU,WORKER_CPU]
//   defaults: 9 rounds of 200000 requests on a 256 MiB file made in $TMPDIR,
//   20 worker kills 300 ms apart, 3 back-end kills, 20 connections, all
//   three parts (well under a minute on an idle host). --pin 0,1 runs the
//   throughput part with this process on CPU 0 and the worker (and the
//   monitor's I/O thread, and the ping-pong's other end) on CPU 1; 0,0
//   puts them all on CPU 0. --only runs one path, for a profiler.
#include <fcntl.h>
#include <liburing.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "backends/uring_block.hpp"
#include "common/log.hpp"
#include "common/unique_fd.hpp"
#include "devices/virtio/blk.hpp"
#include "support/fake_driver.hpp"
#include "support/wired_device.hpp"
#include "vhost_user/device.hpp"
#include "vmm/event_loop.hpp"

namespace {

namespace fs = std::filesystem;
using hospes::UniqueFd;
using hospes::test_support::FakeDriver;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr unsigned kDepth = 32;
constexpr uint32_t kBlock = 4096;
constexpr uint16_t kQueueSize = 128;

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "blkback_bench: %s\n", what.c_str());
    std::exit(1);
}

double seconds_of(clockid_t clock) {
    timespec ts{};
    if (::clock_gettime(clock, &ts) != 0) return 0;
    return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

// CPU time of another process, all its threads (the kernel's process CPU
// clock: nanoseconds, unlike /proc/PID/stat's 10 ms ticks).
clockid_t cpu_clock_of(pid_t pid) {
    clockid_t clock;
    if (int e = ::clock_getcpuclockid(pid, &clock); e != 0) die("clock_getcpuclockid: " + std::string(std::strerror(e)));
    return clock;
}
// utime + stime from /proc/PID/stat, in seconds (clock ticks).
double stat_cpu_seconds(pid_t pid) {
    std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    auto close = text.rfind(')');
    if (close == std::string::npos) return 0;
    std::istringstream fields(text.substr(close + 2));
    std::string field;
    unsigned long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && fields >> field; ++i) {
        if (i == 14) utime = std::stoul(field);
        if (i == 15) stime = std::stoul(field);
    }
    return double(utime + stime) / double(::sysconf(_SC_CLK_TCK));
}

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// The same offset sequence for every path.
struct Offsets {
    explicit Offsets(uint64_t file_size) : blocks(file_size / kBlock) {}
    uint64_t next() { return (rng() % blocks) * kBlock; }
    uint64_t blocks;
    std::mt19937_64 rng{42};
};

// ---------------------------------------------------------------------------
// hospes-blkback as a child process, started as the unit test does.

class Backend {
public:
    Backend(fs::path dir, std::vector<std::string> disks) : dir_(std::move(dir)), disks_(std::move(disks)) {
        log_ = dir_ / "blkback.log";
    }
    ~Backend() { stop(); }

    // Starts the supervisor; `wait`: until its last socket exists and the
    // worker is there.
    void start(bool wait = true) {
        pid_ = ::fork();
        if (pid_ < 0) die("fork");
        if (pid_ == 0) {
            int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            ::dup2(fd, 2);
            std::vector<std::string> args = {HOSPES_BLKBACK, "--socket-dir", dir_.string()};
            for (const auto& d : disks_) {
                args.push_back("--disk");
                args.push_back(d);
            }
            std::vector<char*> argv;
            for (auto& a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            ::execv(HOSPES_BLKBACK, argv.data());
            ::_exit(127);
        }
        if (!wait) return;
        fs::path last = socket(disks_.back().substr(0, disks_.back().find('=')));
        for (int i = 0; i < 1000 && !fs::exists(last); ++i) std::this_thread::sleep_for(5ms);
        if (!fs::exists(last)) die("hospes-blkback did not start:\n" + log_tail());
        if (worker() <= 0) die("hospes-blkback has no worker:\n" + log_tail());
    }
    void kill_and_reap(int signal) {
        if (pid_ <= 0) return;
        ::kill(pid_, signal);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }
    void stop() { kill_and_reap(SIGTERM); }
    pid_t supervisor() const { return pid_; }
    // The supervisor's child, the worker; one other than `not_this` (the
    // one just killed), waiting up to 5 s for it.
    pid_t worker(pid_t not_this = 0) const {
        for (int i = 0; i < 1000; ++i) {
            std::ifstream children("/proc/" + std::to_string(pid_) + "/task/" + std::to_string(pid_) + "/children");
            pid_t pid = 0;
            if (children >> pid && pid > 0 && pid != not_this) return pid;
            std::this_thread::sleep_for(5ms);
        }
        return -1;
    }
    fs::path socket(const std::string& name) const { return dir_ / (name + ".sock"); }
    std::string log_text() const {
        std::ifstream file(log_);
        std::stringstream text;
        text << file.rdbuf();
        return text.str();
    }
    std::string log_tail() const {
        auto text = log_text();
        return text.size() > 3000 ? text.substr(text.size() - 3000) : text;
    }
    size_t log_count(const std::string& what) const {
        auto text = log_text();
        size_t n = 0;
        for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
        return n;
    }

private:
    fs::path dir_, log_;
    std::vector<std::string> disks_;
    pid_t pid_ = -1;
};

// One guest's connection to a blkback disk: front-end, fds, fake driver and
// its request chains, written once and recycled (as blk_bench does).
struct Link {
    struct Slot {
        uint64_t header, data, status;
        uint16_t head;
        bool write;
    };
    std::unique_ptr<hospes::vhost_user::VhostUserDevice> device;
    std::unique_ptr<hospes::test_support::WiredDevice> wired;
    std::unique_ptr<FakeDriver> driver;
    std::vector<Slot> slots;  // the read chains first, then the write chains
    std::vector<int> slot_of_head;
    uint64_t interrupts = 0;  // reads of the call eventfd

    ~Link() {
        driver.reset();  // resets the device (GET_VRING_BASE) while it is there
        wired.reset();
        device.reset();
    }

    // Connects to `socket` and sets up `reads` 4 KiB read chains and
    // `writes` write chains (3 descriptors each, 128 in the ring).
    static std::unique_ptr<Link> open(const fs::path& socket, unsigned reads, unsigned writes = 0) {
        auto link = std::make_unique<Link>();
        auto device = hospes::vhost_user::VhostUserDevice::connect(socket.string(), VIRTIO_ID_BLOCK,
                                                                   sizeof(virtio_blk_config), 1, 256);
        if (!device) die("vhost-user connect: " + device.error().message);
        link->device = std::move(*device);
        link->wired = std::make_unique<hospes::test_support::WiredDevice>(*link->device);
        link->driver = std::make_unique<FakeDriver>(*link->wired);
        // Without EVENT_IDX: FakeDriver never writes used_event, so a
        // back-end honouring it would hardly ever interrupt. (Linux does
        // negotiate it and keeps used_event current; in this ping-pong of
        // whole batches it interrupts once per batch either way.)
        uint64_t features =
            (link->wired->features() & ~hospes::virtio::kFeatureEventIndex) | hospes::virtio::kFeatureVersion1;
        if (auto r = link->driver->start(features, kQueueSize); !r) die("driver start: " + r.error().message);
        auto& d = *link->driver;
        link->slot_of_head.assign(kQueueSize, -1);
        for (unsigned i = 0; i < reads + writes; ++i) {
            bool write = i >= reads;
            Slot s{d.alloc(16), d.alloc(kBlock, kBlock), d.alloc(1), 0, write};
            d.put<uint32_t>(s.header, write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN);
            d.put<uint64_t>(s.header + 8, 0);
            // add_chain makes the chain available (unpublished) as it writes it.
            auto head = d.add_chain(0, {{s.header, 16, false}, {s.data, kBlock, !write}, {s.status, 1, true}}, false);
            if (!head) die("ring full");
            s.head = *head;
            link->slot_of_head[*head] = int(link->slots.size());
            link->slots.push_back(s);
        }
        // Those first requests (block 0) run once, so the ring starts empty.
        link->publish_and_kick();
        for (size_t done = 0; done < link->slots.size();) {
            link->wait_interrupt();
            while (d.next_used(0)) ++done;
        }
        return link;
    }

    // Makes slot `i`'s chain available again with a new offset.
    void make_available(unsigned i, uint64_t offset) {
        auto& d = *driver;
        d.put<uint64_t>(slots[i].header + 8, offset / 512);
        d.make_available(0, slots[i].head, false);
    }
    void publish_and_kick() {
        driver->publish(0);
        driver->kick(0);
    }
    // Blocks until the back-end interrupts.
    void wait_interrupt() {
        uint64_t value;
        if (::read(wired->call(), &value, sizeof(value)) != sizeof(value)) die("read call eventfd");
        ++interrupts;
    }
    bool ok(const FakeDriver::Used& used) const {
        int slot = slot_of_head[used.id];
        return slot >= 0 && driver->get<uint8_t>(slots[size_t(slot)].status) == VIRTIO_BLK_S_OK;
    }
};

// Runs `requests` reads at queue depth 32 through the link; returns wall
// seconds. Status bytes are checked.
double run_reads(Link& link, Offsets& offsets, uint64_t requests, uint64_t* failures) {
    auto start = Clock::now();
    unsigned reads = 0;
    while (reads < link.slots.size() && !link.slots[reads].write) ++reads;
    unsigned depth = unsigned(std::min<uint64_t>(reads, requests));
    for (unsigned i = 0; i < depth; ++i) link.make_available(i, offsets.next());
    uint64_t issued = depth, done = 0;
    link.publish_and_kick();
    auto& d = *link.driver;
    while (done < requests) {
        link.wait_interrupt();
        bool added = false;
        while (auto used = d.next_used(0)) {
            int slot = link.slot_of_head[used->id];
            if (!link.ok(*used)) ++*failures;
            ++done;
            if (issued < requests) {
                link.make_available(unsigned(slot), offsets.next());
                ++issued;
                added = true;
            }
        }
        if (added) link.publish_and_kick();
    }
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// ---------------------------------------------------------------------------
// Part 1: throughput.

void pin(pid_t pid, int cpu);

struct Sample {
    double self, worker, supervisor;
};

double plain_uring(const std::string& path, uint64_t file_size, uint64_t requests) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    io_uring ring;
    io_uring_queue_init(kDepth, &ring, 0);
    std::vector<std::vector<uint8_t>> buffers(kDepth, std::vector<uint8_t>(kBlock));
    std::vector<iovec> iov(kDepth);
    Offsets offsets(file_size);
    auto issue = [&](unsigned slot) {
        iov[slot] = {buffers[slot].data(), kBlock};
        io_uring_sqe* sqe = io_uring_get_sqe(&ring);
        io_uring_prep_readv(sqe, fd, &iov[slot], 1, offsets.next());
        io_uring_sqe_set_data64(sqe, slot);
    };
    double start = seconds_of(CLOCK_PROCESS_CPUTIME_ID);
    uint64_t issued = 0, done = 0;
    for (unsigned slot = 0; slot < kDepth; ++slot, ++issued) issue(slot);
    while (done < requests) {
        io_uring_submit_and_wait(&ring, 1);
        io_uring_cqe* cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            if (cqe->res != int(kBlock)) std::fprintf(stderr, "blkback_bench: plain read failed: %d\n", cqe->res);
            ++seen;
            ++done;
            if (issued < requests) {
                issue(static_cast<unsigned>(io_uring_cqe_get_data64(cqe)));
                ++issued;
            }
        }
        io_uring_cq_advance(&ring, seen);
    }
    double elapsed = seconds_of(CLOCK_PROCESS_CPUTIME_ID) - start;
    io_uring_queue_exit(&ring);
    ::close(fd);
    return double(requests) / elapsed;
}

// Today's in-monitor path, as blk_bench runs it: VirtioBlk and its io_uring
// in this process, the fake driver calling queue_notify and backend_ready
// directly (in a monitor the kick is an ioeventfd its I/O thread wakes on).
double in_monitor(const std::string& path, uint64_t file_size, uint64_t requests) {
    auto backend = hospes::backends::UringBlock::open(path, {true, false});
    if (!backend) die(backend.error().message);
    hospes::devices::VirtioBlk device(std::move(*backend));
    FakeDriver driver(device);
    if (!driver.start(std::nullopt, kQueueSize)) std::exit(1);
    struct Slot {
        uint64_t header, data, status;
    };
    std::vector<Slot> slots;
    std::vector<uint16_t> heads;
    Offsets offsets(file_size);
    for (unsigned i = 0; i < kDepth; ++i) {
        Slot s{driver.alloc(16), driver.alloc(kBlock, kBlock), driver.alloc(1)};
        driver.put<uint32_t>(s.header, VIRTIO_BLK_T_IN);
        driver.put<uint64_t>(s.header + 8, offsets.next() / 512);
        heads.push_back(*driver.add_chain(0, {{s.header, 16, false}, {s.data, kBlock, true}, {s.status, 1, true}}, false));
        slots.push_back(s);
    }
    std::vector<int> slot_of_head(kQueueSize, -1);
    for (unsigned i = 0; i < kDepth; ++i) slot_of_head[heads[i]] = int(i);
    double start = seconds_of(CLOCK_PROCESS_CPUTIME_ID);
    uint64_t issued = kDepth, done = 0;
    driver.publish(0);
    driver.kick(0);
    while (done < requests) {
        device.backend_ready(0);
        bool added = false;
        while (auto used = driver.next_used(0)) {
            int slot = slot_of_head[used->id];
            if (driver.get<uint8_t>(slots[size_t(slot)].status) != VIRTIO_BLK_S_OK)
                std::fprintf(stderr, "blkback_bench: in-monitor read failed\n");
            ++done;
            if (issued < requests) {
                driver.put<uint64_t>(slots[size_t(slot)].header + 8, offsets.next() / 512);
                driver.make_available(0, static_cast<uint16_t>(used->id), false);
                ++issued;
                added = true;
            }
        }
        if (added) {
            driver.publish(0);
            driver.kick(0);
        }
    }
    return double(requests) / (seconds_of(CLOCK_PROCESS_CPUTIME_ID) - start);
}

// The in-monitor path as the monitor really runs it: notifications cross
// threads. The fake driver kicks an eventfd (KVM's ioeventfd) that the
// monitor's I/O thread (EventLoop) waits on with the device's completion
// fd; the device's interrupt writes an eventfd (the irqfd) the fake driver
// sleeps on. CPU: this process, both threads.
class Threaded final : public hospes::virtio::Device {
public:
    explicit Threaded(hospes::virtio::Device& inner)
        : inner_(inner), kick_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)), call_(::eventfd(0, EFD_CLOEXEC)) {}
    uint32_t device_type() const override { return inner_.device_type(); }
    uint64_t features() const override { return inner_.features(); }
    std::vector<uint16_t> queue_max_sizes() const override { return inner_.queue_max_sizes(); }
    void read_config(uint64_t offset, std::span<uint8_t> data) override { inner_.read_config(offset, data); }
    void write_config(uint64_t offset, std::span<const uint8_t> data) override { inner_.write_config(offset, data); }
    hospes::Result<void> activate(uint64_t features, hospes::virtio::ActiveQueues queues) override {
        queues.interrupt = [fd = call_.get()] {
            uint64_t one = 1;
            [[maybe_unused]] auto n = ::write(fd, &one, sizeof(one));
        };
        return inner_.activate(features, std::move(queues));
    }
    void queue_notify(uint16_t) override {
        uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(kick_.get(), &one, sizeof(one));
    }
    void reset() override { inner_.reset(); }
    int kick() const { return kick_.get(); }
    int call() const { return call_.get(); }

private:
    hospes::virtio::Device& inner_;
    UniqueFd kick_, call_;
};

double in_monitor_thread(const std::string& path, uint64_t file_size, uint64_t requests, int pin_loop) {
    auto backend = hospes::backends::UringBlock::open(path, {true, false});
    if (!backend) die(backend.error().message);
    hospes::devices::VirtioBlk device(std::move(*backend));
    Threaded threaded(device);
    auto loop = hospes::EventLoop::create();
    if (!loop) die(loop.error().message);
    bool pinned = pin_loop < 0;
    int kick = threaded.kick();
    auto added = loop->add(kick, [&, kick] {
        if (!pinned) {
            pin(0, pin_loop);
            pinned = true;
        }
        uint64_t count;
        if (::read(kick, &count, sizeof(count)) == sizeof(count)) device.queue_notify(0);
    });
    if (!added) die(added.error().message);
    for (size_t i = 0; i < device.backend_events().size(); ++i) {
        auto event = device.backend_events()[i];
        added = loop->add(event.fd, [&device, i] { device.backend_ready(i); }, event.edge_triggered);
        if (!added) die(added.error().message);
    }
    std::optional<FakeDriver> driver;
    driver.emplace(threaded);
    if (!driver->start(std::nullopt, kQueueSize)) die("driver start");
    loop->start();
    struct Slot {
        uint64_t header, data, status;
    };
    std::vector<Slot> slots;
    std::vector<int> slot_of_head(kQueueSize, -1);
    Offsets offsets(file_size);
    for (unsigned i = 0; i < kDepth; ++i) {
        Slot s{driver->alloc(16), driver->alloc(kBlock, kBlock), driver->alloc(1)};
        driver->put<uint32_t>(s.header, VIRTIO_BLK_T_IN);
        driver->put<uint64_t>(s.header + 8, offsets.next() / 512);
        slot_of_head[*driver->add_chain(0, {{s.header, 16, false}, {s.data, kBlock, true}, {s.status, 1, true}}, false)] =
            int(i);
        slots.push_back(s);
    }
    double start = seconds_of(CLOCK_PROCESS_CPUTIME_ID);
    uint64_t issued = kDepth, done = 0;
    driver->publish(0);
    driver->kick(0);
    while (done < requests) {
        uint64_t value;
        if (::read(threaded.call(), &value, sizeof(value)) != sizeof(value)) die("read call eventfd");
        bool more = false;
        while (auto used = driver->next_used(0)) {
            int slot = slot_of_head[used->id];
            if (driver->get<uint8_t>(slots[size_t(slot)].status) != VIRTIO_BLK_S_OK)
                std::fprintf(stderr, "blkback_bench: in-monitor read failed\n");
            ++done;
            if (issued < requests) {
                driver->put<uint64_t>(slots[size_t(slot)].header + 8, offsets.next() / 512);
                driver->make_available(0, static_cast<uint16_t>(used->id), false);
                ++issued;
                more = true;
            }
        }
        if (more) {
            driver->publish(0);
            driver->kick(0);
        }
    }
    double rate = double(requests) / (seconds_of(CLOCK_PROCESS_CPUTIME_ID) - start);
    loop->stop();
    driver.reset();
    return rate;
}

// The floor of any notification between two processes: a ping-pong of
// eventfd writes and blocking reads (one kick, one interrupt; each side
// sleeps once per round trip). CPU microseconds per round trip, both
// processes, placed like the throughput part (`pin_self`, `pin_other`).
double eventfd_ping_pong(unsigned trips, int pin_self, int pin_other) {
    UniqueFd ping(::eventfd(0, EFD_CLOEXEC)), pong(::eventfd(0, EFD_CLOEXEC));
    pid_t child = ::fork();
    if (child < 0) die("fork");
    if (child == 0) {
        if (pin_other >= 0) pin(0, pin_other);
        uint64_t v;
        for (;;) {
            if (::read(ping.get(), &v, 8) != 8 || v == 2) ::_exit(0);
            ::write(pong.get(), &v, 8);
        }
    }
    if (pin_self >= 0) pin(0, pin_self);
    clockid_t other = cpu_clock_of(child);
    uint64_t one = 1, v;
    for (unsigned i = 0; i < 1000; ++i) {  // warm up
        ::write(ping.get(), &one, 8);
        ::read(pong.get(), &v, 8);
    }
    double a = seconds_of(CLOCK_THREAD_CPUTIME_ID) + seconds_of(other);
    for (unsigned i = 0; i < trips; ++i) {
        ::write(ping.get(), &one, 8);
        ::read(pong.get(), &v, 8);
    }
    double b = seconds_of(CLOCK_THREAD_CPUTIME_ID) + seconds_of(other);
    uint64_t two = 2;
    ::write(ping.get(), &two, 8);
    ::waitpid(child, nullptr, 0);
    return (b - a) / trips * 1e6;
}

struct BlkbackRound {
    double rate;              // requests per CPU second, both processes
    double self_us, worker_us, supervisor_us;  // CPU per request
    double wall_rate;         // requests per wall second
    double per_interrupt;     // requests completed per interrupt
};

BlkbackRound through_blkback(Link& link, clockid_t worker_clock, clockid_t supervisor_clock, uint64_t file_size,
                             uint64_t requests) {
    Offsets offsets(file_size);
    uint64_t failures = 0, interrupts = link.interrupts;
    Sample a{seconds_of(CLOCK_PROCESS_CPUTIME_ID), seconds_of(worker_clock), seconds_of(supervisor_clock)};
    double wall = run_reads(link, offsets, requests, &failures);
    Sample b{seconds_of(CLOCK_PROCESS_CPUTIME_ID), seconds_of(worker_clock), seconds_of(supervisor_clock)};
    if (failures) std::fprintf(stderr, "blkback_bench: %llu blkback reads failed\n", (unsigned long long)failures);
    double self = b.self - a.self, w = b.worker - a.worker, s = b.supervisor - a.supervisor;
    double n = double(requests);
    return {n / (self + w + s), self / n * 1e6, w / n * 1e6, s / n * 1e6, n / wall,
            n / double(link.interrupts - interrupts)};
}

void pin(pid_t pid, int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (::sched_setaffinity(pid, sizeof(set), &set) != 0) die("sched_setaffinity: " + std::string(std::strerror(errno)));
}

void throughput(const fs::path& dir, const std::string& path, unsigned rounds, uint64_t requests,
                const std::string& only, int pin_self, int pin_worker) {
    uint64_t file_size = fs::file_size(path);
    Backend backend(dir / "tp", {"tp=" + path + ",ro"});
    fs::create_directories(dir / "tp");
    backend.start();
    pid_t worker = backend.worker();
    auto link = Link::open(backend.socket("tp"), kDepth);
    clockid_t worker_clock = cpu_clock_of(worker), supervisor_clock = cpu_clock_of(backend.supervisor());
    if (pin_self >= 0) {
        pin(0, pin_self);
        pin(worker, pin_worker);
    }
    std::printf("\n== 1. throughput: 4 KiB random reads, queue depth %u, %.0f MiB file in the page cache, %u rounds of "
                "%llu%s\n",
                kDepth, double(file_size) / (1 << 20), rounds, (unsigned long long)requests,
                pin_self < 0 ? ""
                             : (" (this process on CPU " + std::to_string(pin_self) + ", the worker on CPU " +
                                std::to_string(pin_worker) + ")")
                                   .c_str());
    std::printf("   requests per CPU second; blkback counts this process (fake guest + front-end) + worker + "
                "supervisor\n");
    double worker_stat0 = stat_cpu_seconds(worker), worker_clock0 = seconds_of(worker_clock);
    std::vector<double> plain, monitor, threaded, blk, self_us, worker_us, sup_us, wall, per_irq, pingpong;
    double blk_worker_total = 0;
    for (unsigned r = 0; r < rounds; ++r) {
        double p = 0, m = 0, t = 0;
        BlkbackRound b{};
        // Rotate the order so no path always runs first.
        for (unsigned k = 0; k < 4; ++k) {
            unsigned which = (r + k) % 4;
            if (which == 0 && (only.empty() || only == "plain")) p = plain_uring(path, file_size, requests);
            if (which == 1 && (only.empty() || only == "monitor")) m = in_monitor(path, file_size, requests);
            if (which == 3 && (only.empty() || only == "thread"))
                t = in_monitor_thread(path, file_size, requests, pin_worker);
            if (which == 2 && (only.empty() || only == "blkback")) {
                b = through_blkback(*link, worker_clock, supervisor_clock, file_size, requests);
                blk_worker_total += b.worker_us * double(requests) * 1e-6;
            }
        }
        if (only.empty()) pingpong.push_back(eventfd_ping_pong(20000, pin_self, pin_worker));
        plain.push_back(p);
        monitor.push_back(m);
        threaded.push_back(t);
        blk.push_back(b.rate);
        self_us.push_back(b.self_us);
        worker_us.push_back(b.worker_us);
        sup_us.push_back(b.supervisor_us);
        wall.push_back(b.wall_rate);
        per_irq.push_back(b.per_interrupt);
        std::printf("  round %u: plain %.0f, in-monitor %.0f, in-monitor+I/O thread %.0f, blkback %.0f req/CPU-s (%.2f + "
                    "%.2f us/request in this process + worker; %.0f req/wall-s)\n",
                    r + 1, p, m, t, b.rate, b.self_us, b.worker_us, b.wall_rate);
    }
    double worker_stat1 = stat_cpu_seconds(worker), worker_clock1 = seconds_of(worker_clock);
    std::vector<double> ratio_blk, ratio_mon, ratio_thr, ratio_worker;
    for (unsigned r = 0; r < rounds; ++r) {
        ratio_worker.push_back(1e6 / worker_us[r] / plain[r]);
        ratio_blk.push_back(blk[r] / plain[r]);
        ratio_mon.push_back(monitor[r] / plain[r]);
        ratio_thr.push_back(threaded[r] / plain[r]);
    }
    std::printf("plain io_uring:         median %.0f req/CPU-s\n", median(plain));
    std::printf("in-monitor virtio-blk:  median %.0f req/CPU-s\n", median(monitor));
    std::printf("  with its I/O thread:  median %.0f req/CPU-s\n", median(threaded));
    std::printf("hospes-blkback:         median %.0f req/CPU-s (CPU per request: this process %.2f us, worker %.2f "
                "us, supervisor %.3f us; %.0f req/wall-s; %.1f requests per interrupt)\n",
                median(blk), median(self_us), median(worker_us), median(sup_us), median(wall), median(per_irq));
    if (!only.empty()) return;
    std::printf("ratio blkback / plain:    median of rounds %.3f, of medians %.3f (goal >= 0.90)\n", median(ratio_blk),
                median(blk) / median(plain));
    std::printf("ratio in-monitor / plain: median of rounds %.3f, of medians %.3f\n", median(ratio_mon),
                median(monitor) / median(plain));
    std::printf("ratio in-monitor with I/O thread / plain: median of rounds %.3f, of medians %.3f\n",
                median(ratio_thr), median(threaded) / median(plain));
    std::printf("ratio blkback's worker alone (without the fake guest's CPU) / plain: median of rounds %.3f\n",
                median(ratio_worker));
    double extra = 1e6 / median(blk) - 1e6 / median(monitor);
    std::printf("blkback costs %.3f us/request more than in-monitor: %.2f us per interrupt of %.0f requests; an "
                "eventfd ping-pong between two processes costs %.2f us CPU per round trip (median)\n",
                extra, extra * median(per_irq), median(per_irq), median(pingpong));
    std::printf("cross-check, the worker's CPU over the whole part: its CPU clock %.3f s, /proc stat utime+stime "
                "%.2f s (10 ms ticks); in the blkback rounds %.3f s\n",
                worker_clock1 - worker_clock0, worker_stat1 - worker_stat0, blk_worker_total);
    link.reset();
    backend.stop();
}

// ---------------------------------------------------------------------------
// Part 2: reconnect latency.

struct Flow {
    Link& link;
    Offsets offsets;
    uint64_t completed = 0, failures = 0;
    unsigned next_slot = 0;

    // One request: the link's read and write chains by turns.
    void submit() {
        link.make_available(next_slot, offsets.next());
        next_slot = (next_slot + 1) % unsigned(link.slots.size());
        link.publish_and_kick();
    }
    // Takes a completion if there is one.
    bool reap() {
        auto used = link.driver->next_used(0);
        if (!used) return false;
        if (!link.ok(*used)) ++failures;
        ++completed;
        return true;
    }
    // Waits for the completion of the request in flight, letting the
    // front-end handle its socket and retry timer as the monitor's I/O
    // thread does. `marks`: when the front-end saw the loss and
    // reconnected, and when `new_worker` first said a new worker runs
    // (looked at every millisecond).
    struct Marks {
        Clock::time_point lost{}, back{}, worker{};
        std::function<bool()> new_worker;
    };
    bool wait(Clock::time_point deadline, Marks* marks = nullptr) {
        auto& device = *link.device;
        uint64_t reconnects = device.reconnects();
        int events = device.backend_events()[0].fd;
        while (Clock::now() < deadline) {
            if (reap()) return true;
            if (marks && marks->worker == Clock::time_point{} && marks->new_worker()) marks->worker = Clock::now();
            pollfd p[2] = {{link.wired->call(), POLLIN, 0}, {events, POLLIN, 0}};
            if (::poll(p, 2, marks ? 1 : 20) <= 0) continue;
            if (p[0].revents & POLLIN) link.wait_interrupt();
            if (p[1].revents & POLLIN) {
                device.backend_ready(0);
                if (marks && !device.connected() && marks->lost == Clock::time_point{}) marks->lost = Clock::now();
                if (marks && device.reconnects() != reconnects && marks->back == Clock::time_point{})
                    marks->back = Clock::now();
            }
        }
        return false;
    }
    // Requests one after another for `ms`.
    void run_for(double ms) {
        auto start = Clock::now();
        while (ms_since(start) < ms) {
            submit();
            if (!wait(Clock::now() + 10s)) die("a request did not complete within 10 s");
        }
    }
};

struct KillTimes {
    double dead, worker, lost, reconnected, first;  // ms after the kill
    bool pending;  // the request sent just before the kill had not completed when the worker died
};

void print_kills(const char* what, const std::vector<KillTimes>& kills) {
    std::vector<double> dead, worker, lost, back, first;
    unsigned pending = 0;
    for (const auto& k : kills) {
        dead.push_back(k.dead);
        worker.push_back(k.worker);
        lost.push_back(k.lost);
        back.push_back(k.reconnected);
        first.push_back(k.first);
        pending += k.pending;
    }
    auto worst = [](const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); };
    std::printf("%s, %zu kills (ms after the kill: median / worst):\n", what, kills.size());
    std::printf("  worker gone (its pidfd):            %7.2f / %7.2f\n", median(dead), worst(dead));
    std::printf("  front-end saw the socket close:     %7.2f / %7.2f\n", median(lost), worst(lost));
    std::printf("  a new worker runs (1 ms polls):     %7.2f / %7.2f\n", median(worker), worst(worker));
    std::printf("  front-end reconnected:              %7.2f / %7.2f\n", median(back), worst(back));
    std::printf("  first request completed after it:   %7.2f / %7.2f   <- the figure\n", median(first), worst(first));
    std::printf("  the request sent just before the kill had not completed when the worker died: %u of %zu\n",
                pending, kills.size());
}

void reconnect(const fs::path& dir, unsigned kills, unsigned backend_kills, double spacing_ms) {
    fs::create_directories(dir / "rc");
    fs::path image = dir / "rc.img";
    {
        std::ofstream file(image, std::ios::binary);
        file.seekp((64 << 20) - 1);
        file.put(0);
    }
    Backend backend(dir / "rc", {"rc=" + image.string()});
    backend.start();
    auto link = Link::open(backend.socket("rc"), 1, 1);
    Flow flow{*link, Offsets(64 << 20)};
    std::printf("\n== 2. reconnect: 4 KiB writes and reads by turns at queue depth 1 on a writable 64 MiB disk; "
                "%u worker kills, then %u of the whole back-end, %.0f ms of requests before each\n",
                kills, backend_kills, spacing_ms);
    auto ms_after = [](Clock::time_point t, Clock::time_point from) {
        return t == Clock::time_point{} ? -1.0 : std::chrono::duration<double, std::milli>(t - from).count();
    };
    auto one_kill = [&](bool whole) -> KillTimes {
        flow.run_for(spacing_ms);
        pid_t worker = backend.worker();
        UniqueFd pidfd(int(::syscall(SYS_pidfd_open, worker, 0)));  // the worker dies either way
        if (!pidfd.valid()) die("pidfd_open: " + std::string(std::strerror(errno)));
        flow.submit();
        auto killed = Clock::now();
        KillTimes t{};
        pollfd p{pidfd.get(), POLLIN, 0};
        if (whole) {
            backend.kill_and_reap(SIGKILL);  // its worker has PR_SET_PDEATHSIG
            ::poll(&p, 1, 5000);
            t.dead = ms_since(killed);
            backend.start(false);  // at once, as a test or a service manager would
        } else {
            ::kill(worker, SIGKILL);
            ::poll(&p, 1, 5000);
            t.dead = ms_since(killed);
        }
        // A completion already in the used ring was the dead worker's:
        // count only what comes after, with a request waiting.
        if (flow.reap())
            flow.submit();
        else
            t.pending = true;
        Flow::Marks marks;
        marks.new_worker = [&] {
            std::ifstream children("/proc/" + std::to_string(backend.supervisor()) + "/task/" +
                                   std::to_string(backend.supervisor()) + "/children");
            pid_t pid = 0;
            return children >> pid && pid > 0 && pid != worker;
        };
        if (!flow.wait(Clock::now() + 20s, &marks))
            die("no request completed within 20 s of a kill:\n" + backend.log_tail());
        t.first = ms_since(killed);
        t.lost = ms_after(marks.lost, killed);
        t.reconnected = ms_after(marks.back, killed);
        t.worker = ms_after(marks.worker, killed);
        return t;
    };
    std::vector<KillTimes> worker_kills, backend_kill_times;
    for (unsigned k = 0; k < kills; ++k) worker_kills.push_back(one_kill(false));
    for (unsigned k = 0; k < backend_kills; ++k) backend_kill_times.push_back(one_kill(true));
    flow.run_for(spacing_ms);
    if (!worker_kills.empty()) print_kills("worker SIGKILLed (its supervisor starts another)", worker_kills);
    if (!backend_kill_times.empty())
        print_kills("whole back-end SIGKILLed (the supervisor; started again at once)", backend_kill_times);
    std::printf("  requests completed %llu, failed %llu; front-end reconnects %llu; requests the new workers ran again "
                "from the inflight region: %zu log lines\n",
                (unsigned long long)flow.completed, (unsigned long long)flow.failures,
                (unsigned long long)link->device->reconnects(), backend.log_count("are run again"));
    link.reset();
    backend.stop();
}

// ---------------------------------------------------------------------------
// Part 3: memory.

std::map<std::string, long> kib_fields(const std::string& path) {
    std::map<std::string, long> fields;
    std::ifstream file(path);
    std::string line;
    while (std::getline(file, line)) {
        auto colon = line.find(':');
        if (colon == std::string::npos || line.find("kB") == std::string::npos) continue;
        fields[line.substr(0, colon)] = std::atol(line.c_str() + colon + 1);
    }
    return fields;
}

// Rss and Pss of the worker's mappings by kind, from /proc/PID/smaps.
std::map<std::string, std::pair<long, long>> rss_by_kind(pid_t pid) {
    std::map<std::string, std::pair<long, long>> kinds;
    std::ifstream file("/proc/" + std::to_string(pid) + "/smaps");
    std::string line, kind;
    while (std::getline(file, line)) {
        if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) && line.find('-') < 17) {
            // "start-end perms offset dev inode   name"
            std::istringstream fields(line);
            std::string range, perms, offset, dev, inode, name;
            fields >> range >> perms >> offset >> dev >> inode;
            std::getline(fields, name);
            name.erase(0, name.find_first_not_of(' '));
            if (name.find("hospes-guest-ram") != std::string::npos)
                kind = "guest memory (memfd)";
            else if (name.find("hospes-inflight") != std::string::npos)
                kind = "inflight regions (memfd)";
            else if (name.starts_with("/dev/zero"))  // MAP_SHARED | MAP_ANONYMOUS
                kind = "shared with the supervisor";
            else if (name.find("io_uring") != std::string::npos)
                kind = "io_uring rings";
            else if (name.empty() || name == "[heap]")
                kind = "heap and anonymous";
            else if (name.starts_with("["))
                kind = "stack, vdso, ...";
            else
                kind = "binary and libraries";
        } else if (line.starts_with("Rss:")) {
            kinds[kind].first += std::atol(line.c_str() + 4);
        } else if (line.starts_with("Pss:")) {
            kinds[kind].second += std::atol(line.c_str() + 4);
        }
    }
    return kinds;
}

struct Memory {
    std::map<std::string, long> status, rollup;
    std::map<std::string, std::pair<long, long>> kinds;
};
Memory memory_of(pid_t pid) {
    return {kib_fields("/proc/" + std::to_string(pid) + "/status"),
            kib_fields("/proc/" + std::to_string(pid) + "/smaps_rollup"), rss_by_kind(pid)};
}

// Some I/O on a link: reads at queue depth 32 over the disk, then writes.
constexpr unsigned kWrites = 8;
void exercise(Link& link, uint64_t disk_size) {
    Offsets offsets(disk_size);
    uint64_t failures = 0;
    run_reads(link, offsets, 512, &failures);
    for (unsigned i = 0; i < link.slots.size(); ++i)
        if (link.slots[i].write) link.make_available(i, offsets.next());
    link.publish_and_kick();
    for (size_t done = 0; done < kWrites;) {
        link.wait_interrupt();
        while (auto used = link.driver->next_used(0)) {
            failures += !link.ok(*used);
            ++done;
        }
    }
    if (failures) die("reads failed on a memory-part link");
}

void memory(const fs::path& dir, unsigned connections) {
    constexpr uint64_t kDiskSize = 16 << 20;
    fs::create_directories(dir / "mem");
    std::vector<std::string> disks;
    for (unsigned i = 0; i < connections; ++i) {
        fs::path image = dir / "mem" / ("m" + std::to_string(i) + ".img");
        std::ofstream file(image, std::ios::binary);
        file.seekp(kDiskSize - 1);
        file.put(0);
        disks.push_back("m" + std::to_string(i) + "=" + image.string());
    }
    Backend backend(dir / "mem", disks);
    backend.start();
    pid_t worker = backend.worker();
    std::this_thread::sleep_for(100ms);
    std::vector<Memory> at;
    at.push_back(memory_of(worker));
    std::vector<std::unique_ptr<Link>> links;
    for (unsigned i = 0; i < connections; ++i) {
        links.push_back(Link::open(backend.socket("m" + std::to_string(i)), kDepth, kWrites));
        exercise(*links.back(), kDiskSize);
        if (i == 0) at.push_back(memory_of(worker));
    }
    at.push_back(memory_of(worker));
    Memory supervisor = memory_of(backend.supervisor());
    links.clear();
    for (int i = 0; i < 100 && backend.log_count("connection ended") < connections; ++i) std::this_thread::sleep_for(10ms);
    at.push_back(memory_of(worker));
    bool rollup = !at[0].rollup.empty();
    std::printf("\n== 3. memory of the blkback worker: %u disks served; guest connections, each with its own 64 MiB "
                "memfd guest memory (shared with the worker), 512 reads at QD 32 and 8 writes of 4 KiB\n",
                connections);
    std::printf("  %-28s %10s %10s %10s %12s %14s\n", "KiB", "0 conns", "1 conn", std::to_string(connections).append(" conns").c_str(),
                "all closed", "per conn (N-1)");
    auto row = [&](const char* label, const char* file, const char* field) {
        auto get = [&](const Memory& m) {
            const auto& f = std::string(file) == "status" ? m.status : m.rollup;
            auto it = f.find(field);
            return it == f.end() ? -1L : it->second;
        };
        long v0 = get(at[0]), v1 = get(at[1]), vn = get(at[2]), vc = get(at[3]);
        if (v0 < 0) return;
        std::printf("  %-28s %10ld %10ld %10ld %12ld %14.1f\n", label, v0, v1, vn, vc,
                    connections > 1 ? double(vn - v1) / double(connections - 1) : 0.0);
    };
    row("VmRSS", "status", "VmRSS");
    row("  RssAnon (private heap)", "status", "RssAnon");
    row("  RssFile (binary, libs)", "status", "RssFile");
    row("  RssShmem (guest memory..)", "status", "RssShmem");
    if (rollup) {
        row("Pss", "rollup", "Pss");
        row("  Pss_Anon", "rollup", "Pss_Anon");
        row("  Pss_File", "rollup", "Pss_File");
        row("  Pss_Shmem", "rollup", "Pss_Shmem");
        row("Private_Dirty", "rollup", "Private_Dirty");
        row("Shared_Dirty", "rollup", "Shared_Dirty");
        row("Shared_Clean", "rollup", "Shared_Clean");
    } else {
        std::printf("  (smaps_rollup not readable)\n");
    }
    std::set<std::string> kinds;
    for (const auto& m : at)
        for (const auto& [kind, _] : m.kinds) kinds.insert(kind);
    std::printf("  Rss by mapping (smaps):\n");
    for (const auto& kind : kinds) {
        auto get = [&](const Memory& m) {
            auto it = m.kinds.find(kind);
            return it == m.kinds.end() ? 0L : it->second.first;
        };
        long v0 = get(at[0]), v1 = get(at[1]), vn = get(at[2]), vc = get(at[3]);
        std::printf("    %-26s %10ld %10ld %10ld %12ld %14.1f\n", kind.c_str(), v0, v1, vn, vc,
                    connections > 1 ? double(vn - v1) / double(connections - 1) : 0.0);
    }
    std::printf("  the supervisor: VmRSS %ld KiB, RssAnon %ld KiB\n", supervisor.status["VmRSS"],
                supervisor.status["RssAnon"]);
    backend.stop();
}

}  // namespace

int main(int argc, char** argv) {
    unsigned rounds = 9, kills = 20, backend_kills = 3, connections = 20;
    uint64_t requests = 200000;
    double spacing_ms = 300;
    std::string path, only;
    std::vector<std::string> parts;
    int pin_self = -1, pin_worker = -1;
    for (int i = 1; i < argc; ++i) {
        std::string option = argv[i];
        if (i + 1 >= argc) option = "--help";
        std::string value = i + 1 < argc ? argv[i + 1] : "";
        if (option == "--rounds")
            rounds = unsigned(std::stoul(value));
        else if (option == "--requests")
            requests = std::stoull(value);
        else if (option == "--file")
            path = value;
        else if (option == "--only")
            only = value;
        else if (option == "--kills")
            kills = unsigned(std::stoul(value));
        else if (option == "--backend-kills")
            backend_kills = unsigned(std::stoul(value));
        else if (option == "--spacing-ms")
            spacing_ms = std::stod(value);
        else if (option == "--connections")
            connections = std::max(1u, unsigned(std::stoul(value)));
        else if (option == "--part")
            parts.push_back(value);
        else if (option == "--pin" && std::sscanf(value.c_str(), "%d,%d", &pin_self, &pin_worker) == 2) {
        } else {
            std::fprintf(stderr,
                         "usage: blkback_bench [--rounds N] [--requests M] [--file PATH] [--only plain|monitor|thread|blkback]\n"
                         "                     [--kills K] [--backend-kills B] [--spacing-ms MS] [--connections C]\n"
                         "                     [--part throughput|reconnect|memory]... [--pin CPU,CPU]\n");
            return 2;
        }
        ++i;
    }
    if (parts.empty()) parts = {"throughput", "reconnect", "memory"};
    auto wanted = [&](const char* part) { return std::find(parts.begin(), parts.end(), part) != parts.end(); };
    hospes::log::init(false, "blkback_bench");
    ::signal(SIGPIPE, SIG_IGN);
    fs::path dir = fs::temp_directory_path() / ("blkback_bench." + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::printf("blkback_bench: %s\n", HOSPES_BLKBACK);
    if (wanted("throughput")) {
        bool made = path.empty();
        if (made) {
            path = (dir / "tp.img").string();
            std::vector<uint8_t> chunk(1 << 20, 0x5a);
            int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
            for (int i = 0; i < 256; ++i)
                if (::write(fd, chunk.data(), chunk.size()) != ssize_t(chunk.size())) die("cannot write the file");
            ::close(fd);
        }
        {  // into the page cache
            std::vector<uint8_t> chunk(1 << 20);
            int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
            while (::read(fd, chunk.data(), chunk.size()) > 0) {
            }
            ::close(fd);
        }
        throughput(dir, path, rounds, requests, only, pin_self, pin_worker);
    }
    if (wanted("reconnect")) reconnect(dir, kills, backend_kills, spacing_ms);
    if (wanted("memory")) memory(dir, connections);
    fs::remove_all(dir);
    return 0;
}
