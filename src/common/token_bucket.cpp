#include "common/token_bucket.hpp"

#include <algorithm>

namespace hospes {

void TokenBucket::set(uint64_t rate, uint64_t burst, Clock::time_point now) {
    rate_ = static_cast<double>(rate);
    // At least one unit's worth, so a small rate is not stuck below 1.
    capacity_ = rate == 0 ? 0 : std::max(1.0, burst != 0 ? static_cast<double>(burst) : rate_ / 10);
    tokens_ = capacity_;
    last_ = now;
}

bool TokenBucket::allows(Clock::time_point now) {
    if (!limited()) return true;
    if (now > last_) {
        double seconds = std::chrono::duration<double>(now - last_).count();
        tokens_ = std::min(capacity_, tokens_ + seconds * rate_);
        last_ = now;
    }
    return tokens_ > 0;
}

TokenBucket::Clock::time_point TokenBucket::ready_at() const {
    if (!limited() || tokens_ > 0) return last_;
    // Just past the moment the debt is paid off.
    auto wait = std::chrono::duration<double>((-tokens_) / rate_ + 1e-6);
    return last_ + std::chrono::duration_cast<Clock::duration>(wait);
}

}  // namespace hospes
