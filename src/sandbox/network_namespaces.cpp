#include "sandbox/network_namespaces.hpp"

#include "common/log.hpp"
#include "sandbox/jail.hpp"

namespace hospes::sandbox {

NetworkNamespaces::NetworkNamespaces(size_t spare) : spare_(spare), maker_([this] { make_ahead(); }) {}

NetworkNamespaces::~NetworkNamespaces() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    changed_.notify_all();
    maker_.join();
}

UniqueFd NetworkNamespaces::take() {
    std::lock_guard lock(mutex_);
    if (ready_.empty()) return {};
    UniqueFd taken = std::move(ready_.front());
    ready_.pop_front();
    changed_.notify_all();
    return taken;
}

void NetworkNamespaces::make_ahead() {
    for (;;) {
        {
            std::unique_lock lock(mutex_);
            changed_.wait(lock, [&] { return stopping_ || ready_.size() < spare_; });
            if (stopping_) return;
        }
        auto made = make_network_namespace();
        if (!made) {
            // The monitors make their own, as without this.
            log::warn("network namespaces are not made ahead: {}", made.error().message);
            return;
        }
        std::lock_guard lock(mutex_);
        ready_.push_back(std::move(*made));
    }
}

}  // namespace hospes::sandbox
