#include "devices/virtio/rng.hpp"

#include <sys/random.h>

#include <algorithm>
#include <cstring>

namespace hospes::devices {

void VirtioRng::read_config(uint64_t, std::span<uint8_t> data) {
    std::memset(data.data(), 0, data.size());  // no configuration space
}

Result<void> VirtioRng::activate(uint64_t, virtio::ActiveQueues queues) {
    active_ = std::move(queues);
    return {};
}

void VirtioRng::queue_notify(uint16_t index) {
    if (index != 0 || active_.queues == nullptr) return;
    auto& queue = (*active_.queues)[0];
    bool used = false;
    for (;;) {
        auto chain = queue.pop(*active_.memory);
        if (!chain) {
            active_.fail(chain.error());
            return;
        }
        if (!*chain) break;
        size_t written = 0;
        for (auto buffer : (*chain)->writable) {
            size_t want = std::min(buffer.size(), kMaxBytesPerRequest - written);
            size_t filled = 0;
            while (filled < want) {
                ssize_t n = ::getrandom(buffer.data() + filled, want - filled, 0);
                if (n <= 0) break;
                filled += static_cast<size_t>(n);
            }
            written += filled;
            if (filled < want || written == kMaxBytesPerRequest) break;
        }
        if (auto r = queue.push(*active_.memory, (*chain)->head, static_cast<uint32_t>(written)); !r) {
            active_.fail(r.error());
            return;
        }
        used = true;
    }
    if (used && queue.should_notify(*active_.memory)) active_.interrupt();
}

}  // namespace hospes::devices
