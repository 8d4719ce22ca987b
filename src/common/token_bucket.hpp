// A cap with a burst, as both driver domains and the monitor's capped
// output apply them: a bucket of tokens (requests, packets or bytes)
// refilled at the capped rate up to its size, the burst. Work goes ahead while the balance is positive and then
// takes its whole cost, going into debt when it costs more than is there:
// what comes after waits the debt out, so the cap holds over time even for
// work larger than the bucket.
#pragma once

#include <chrono>
#include <cstdint>

namespace hospes {

class TokenBucket {
public:
    using Clock = std::chrono::steady_clock;

    // rate per second; 0: unlimited. burst: the bucket's size, 0 for a
    // tenth of a second at the rate. The bucket starts full.
    void set(uint64_t rate, uint64_t burst, Clock::time_point now);
    bool limited() const { return rate_ > 0; }
    // Refills for the time gone by; true when positive (or unlimited).
    bool allows(Clock::time_point now);
    void take(double amount) {
        if (limited()) tokens_ -= amount;
    }
    // When the balance is positive again (after allows() said no).
    Clock::time_point ready_at() const;
    double capacity() const { return capacity_; }

private:
    double rate_ = 0, capacity_ = 0, tokens_ = 0;
    Clock::time_point last_{};
};

namespace driver_domain {
using Clock = TokenBucket::Clock;
using hospes::TokenBucket;
}  // namespace driver_domain

}  // namespace hospes
