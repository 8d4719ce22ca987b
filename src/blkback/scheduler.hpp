// Sharing host disks between guests: hospes-blkback's I/O scheduler.
//
// Each served disk is a Client of the HostDisk its image lives on (the
// block device, or the device of the file system holding the file). Per
// host disk:
//  - a bounded depth: at most `depth` requests of all its clients are with
//    the host at once, so the order in which the scheduler starts requests
//    is the order the disk sees them, and no deep host queue fills with one
//    guest's requests ahead of everyone else's;
//  - start-time fair queueing by cost: a request costs one op plus its
//    bytes in units of kBytesPerOp, and a client's virtual time advances
//    by cost / weight for each request it starts. The next request comes
//    from the waiting client whose start tag, max(its virtual time, the
//    disk's), is smallest: shares follow the weights while clients
//    compete, an idle client's share goes to the others (work-conserving),
//    and one that comes back starts at most kReturnCredit ops before the
//    disk's virtual time: a guest whose readers are synchronous runs its
//    ring dry for a moment between requests when its CPU is busy (the
//    nested lab: 467 times in 20 s, and A's share of 1:3 was 27.9 %), and
//    gets those turns back, but long idling saves up no more credit than
//    that, and no debt starves it;
//  - caps: token buckets for requests and bytes per second, per client and
//    per host disk, each with a burst (the bucket's size, full when the cap
//    is set and refilled while the client is below its rate). A request
//    starts when every bucket that applies is positive and then takes its
//    cost from them, going into debt if it is larger than what is there:
//    the requests after it wait the debt out, so a cap holds over time
//    even for requests larger than the bucket.
// Requests not yet started stay in the guest's ring: back-pressure on the
// guest, no queue growing inside the back-end.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "devices/virtio/blk.hpp"
#include "common/token_bucket.hpp"

namespace hospes::blkback {

using driver_domain::Clock;
using driver_domain::TokenBucket;

// A cap; 0 means none.
struct Limits {
    uint64_t iops = 0, bps = 0;
    // Bucket sizes (requests, bytes); 0: a tenth of a second at the rate.
    uint64_t iops_burst = 0, bps_burst = 0;
};

struct Policy {
    static constexpr uint32_t kMaxWeight = 10000;
    uint32_t weight = 100;  // 1 to kMaxWeight
    Limits limits;
};

// What a client did: kept in memory shared with the supervisor, so a
// restarted worker goes on counting.
struct ClientCounters {
    uint64_t requests = 0;  // taken from the ring and started
    uint64_t reads = 0, writes = 0, read_bytes = 0, write_bytes = 0;
    uint64_t throttled = 0;  // times a cap held the client back
    uint64_t ring_empty = 0;  // times its turn came with nothing in the ring: shares below the weight's mean this
    // How long, in all, its ring sat empty from such a turn to the guest's
    // next request (microseconds): a time with no demand, whose share a
    // work-conserving scheduler rightly gives the others.
    uint64_t ring_empty_us = 0;
};

class Scheduler;
struct HostDisk;

class Client final : public devices::VirtioBlk::Gate {
public:
    Client(Scheduler& scheduler, HostDisk& disk, std::string name, ClientCounters& counters);
    // The device of the guest connected now; nullptr when none is.
    void attach(devices::VirtioBlk* device);
    void set_policy(const Policy& policy, Clock::time_point now);
    const Policy& policy() const { return policy_; }
    const std::string& name() const { return name_; }
    const ClientCounters& counters() const { return counters_; }
    const HostDisk& host_disk() const { return disk_; }
    // The microseconds of the empty spell going on now (0: none), which
    // counters().ring_empty_us adds only when it ends.
    uint64_t empty_us_now(Clock::time_point now) const;
    void kicked() override;

private:
    friend class Scheduler;
    Scheduler& scheduler_;
    HostDisk& disk_;
    std::string name_;
    ClientCounters& counters_;
    devices::VirtioBlk* device_ = nullptr;
    Policy policy_;
    TokenBucket requests_, bytes_;
    double finish_ = 0;      // virtual time after its last request
    uint64_t last_turn_ = 0;  // breaks ties: the one served longest ago goes first
    bool waiting_ = false;   // the ring may hold requests not yet started
    bool held_ = false;      // a cap holds it back now
    std::optional<Clock::time_point> empty_since_;  // its ring was found empty then, and no request came since
    void end_empty_spell();
};

struct HostDisk {
    static constexpr uint32_t kDefaultDepth = 32;
    uint64_t device = 0;  // st_rdev of a block device, st_dev of a file's file system
    uint32_t depth = kDefaultDepth;
    Limits limits;
    TokenBucket requests, bytes;
    double virtual_time = 0;
    std::vector<Client*> clients;
};

class Scheduler {
public:
    static constexpr double kBytesPerOp = 64 * 1024;  // a request's bytes cost as many ops as this many bytes
    static constexpr int kBudget = 512;               // requests started per run() before others get a turn
    static constexpr double kReturnCredit = 4;        // ops of missed share a client that comes back may catch up

    // The host disk with this device number, made on first use.
    HostDisk& host_disk(uint64_t device);
    void set_host_disk(HostDisk& disk, uint32_t depth, const Limits& limits, Clock::time_point now);
    Client& add_client(HostDisk& disk, std::string name, ClientCounters& counters);
    // The client must have no device attached.
    void remove_client(Client& client);
    const std::vector<std::unique_ptr<HostDisk>>& host_disks() const { return disks_; }

    // Starts every request the policy allows now and hands them to the
    // host. Returns early after kBudget requests: more_work() then says so.
    void run(Clock::time_point now);
    bool more_work() const { return more_work_; }
    // When a client held back by a cap may go on; none: nothing waits on a cap.
    std::optional<Clock::time_point> next_wakeup() const { return wakeup_; }
    // A client may have new requests: run() should be called.
    void wake() { woken_ = true; }
    bool woken() const { return woken_; }

private:
    // Runs one host disk; returns the requests started.
    int run_disk(HostDisk& disk, Clock::time_point now, int budget);
    void wake_at(Clock::time_point when);

    std::vector<std::unique_ptr<HostDisk>> disks_;
    std::vector<std::unique_ptr<Client>> clients_;
    uint64_t turns_ = 0;
    bool more_work_ = false, woken_ = false;
    std::optional<Clock::time_point> wakeup_;
};

}  // namespace hospes::blkback
