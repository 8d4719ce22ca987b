#include "blkback/scheduler.hpp"

#include <algorithm>
#include <cmath>

namespace hospes::blkback {

Client::Client(Scheduler& scheduler, HostDisk& disk, std::string name, ClientCounters& counters)
    : scheduler_(scheduler), disk_(disk), name_(std::move(name)), counters_(counters) {}

void Client::attach(devices::VirtioBlk* device) {
    end_empty_spell();
    if (device_ != nullptr) device_->set_gate(nullptr);
    device_ = device;
    waiting_ = device != nullptr;  // whatever is in the ring already
    if (device != nullptr) device->set_gate(this);
    scheduler_.wake();
}

void Client::set_policy(const Policy& policy, Clock::time_point now) {
    policy_ = policy;
    policy_.weight = std::clamp<uint32_t>(policy.weight, 1, Policy::kMaxWeight);
    requests_.set(policy.limits.iops, policy.limits.iops_burst, now);
    bytes_.set(policy.limits.bps, policy.limits.bps_burst, now);
    scheduler_.wake();
}

void Client::kicked() {
    end_empty_spell();
    waiting_ = true;
    scheduler_.wake();
}

uint64_t Client::empty_us_now(Clock::time_point now) const {
    if (!empty_since_ || now < *empty_since_) return 0;
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(now - *empty_since_).count());
}

void Client::end_empty_spell() {
    if (!empty_since_) return;
    counters_.ring_empty_us += empty_us_now(Clock::now());
    empty_since_.reset();
}

HostDisk& Scheduler::host_disk(uint64_t device) {
    for (auto& disk : disks_)
        if (disk->device == device) return *disk;
    disks_.push_back(std::make_unique<HostDisk>());
    disks_.back()->device = device;
    return *disks_.back();
}

void Scheduler::set_host_disk(HostDisk& disk, uint32_t depth, const Limits& limits, Clock::time_point now) {
    disk.depth = std::max<uint32_t>(depth, 1);
    disk.limits = limits;
    disk.requests.set(limits.iops, limits.iops_burst, now);
    disk.bytes.set(limits.bps, limits.bps_burst, now);
    wake();
}

Client& Scheduler::add_client(HostDisk& disk, std::string name, ClientCounters& counters) {
    clients_.push_back(std::make_unique<Client>(*this, disk, std::move(name), counters));
    disk.clients.push_back(clients_.back().get());
    return *clients_.back();
}

void Scheduler::remove_client(Client& client) {
    std::erase(client.disk_.clients, &client);
    std::erase_if(clients_, [&](const auto& c) { return c.get() == &client; });
}

void Scheduler::wake_at(Clock::time_point when) {
    if (!wakeup_ || when < *wakeup_) wakeup_ = when;
}

void Scheduler::run(Clock::time_point now) {
    woken_ = false;
    more_work_ = false;
    wakeup_.reset();
    int budget = kBudget;
    for (auto& disk : disks_) budget -= run_disk(*disk, now, std::max(budget, 1));
}

int Scheduler::run_disk(HostDisk& disk, Clock::time_point now, int budget) {
    int started_total = 0;
    std::vector<Client*> touched;
    for (;;) {
        uint32_t in_flight = 0;
        for (auto* client : disk.clients)
            if (client->device_ != nullptr) in_flight += client->device_->in_flight();
        int started = 0;
        while (started_total + started < budget && in_flight < disk.depth) {
            if (!disk.requests.allows(now) || !disk.bytes.allows(now)) {
                wake_at(std::max(disk.requests.ready_at(), disk.bytes.ready_at()));
                break;
            }
            Client* best = nullptr;
            double best_start = 0;
            for (auto* client : disk.clients) {
                if (client->device_ == nullptr || !client->waiting_) continue;
                if (!client->requests_.allows(now) || !client->bytes_.allows(now)) {
                    if (!client->held_) ++client->counters_.throttled;
                    client->held_ = true;
                    wake_at(std::max(client->requests_.ready_at(), client->bytes_.ready_at()));
                    continue;
                }
                client->held_ = false;
                // A client whose ring ran dry for a moment keeps up to
                // kReturnCredit ops of the share it missed (bounded lag).
                double start = std::max(client->finish_, disk.virtual_time - kReturnCredit / client->policy_.weight);
                if (best == nullptr || start < best_start ||
                    (start == best_start && client->last_turn_ < best->last_turn_)) {
                    best = client;
                    best_start = start;
                }
            }
            if (best == nullptr) break;
            uint32_t before = best->device_->in_flight();
            auto request = best->device_->start_next();
            if (!request) {
                best->waiting_ = false;  // the ring is empty: the next kick says when it is not
                ++best->counters_.ring_empty;
                best->empty_since_ = now;
                continue;
            }
            ++started;
            in_flight += best->device_->in_flight() - before;
            if (std::find(touched.begin(), touched.end(), best) == touched.end()) touched.push_back(best);
            double bytes = static_cast<double>(request->bytes);
            double cost = 1 + bytes / kBytesPerOp;
            disk.virtual_time = std::max(disk.virtual_time, best_start);
            best->finish_ = best_start + cost / best->policy_.weight;
            best->last_turn_ = ++turns_;
            best->requests_.take(1);
            best->bytes_.take(bytes);
            disk.requests.take(1);
            disk.bytes.take(bytes);
            auto& counters = best->counters_;
            ++counters.requests;
            if (request->is_read) ++counters.reads, counters.read_bytes += request->bytes;
            if (request->is_write) ++counters.writes, counters.write_bytes += request->bytes;
        }
        // Hand what was started to the host; page-cache hits complete at
        // once and free depth for more.
        for (auto* client : touched)
            if (client->device_ != nullptr) client->device_->submit();
        touched.clear();
        started_total += started;
        if (started == 0) break;
        if (started_total >= budget) {
            more_work_ = true;
            break;
        }
    }
    return started_total;
}

}  // namespace hospes::blkback
