#include "vmm/event_loop.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace hospes {

Result<EventLoop> EventLoop::create() {
    EventLoop loop;
    loop.epoll_ = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
    if (!loop.epoll_.valid()) return errno_error("epoll_create1");
    loop.wakeup_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!loop.wakeup_.valid()) return errno_error("eventfd");
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.ptr = nullptr;  // the wake-up
    if (::epoll_ctl(loop.epoll_.get(), EPOLL_CTL_ADD, loop.wakeup_.get(), &event) != 0)
        return errno_error("epoll_ctl");
    return loop;
}

EventLoop::~EventLoop() { stop(); }

Result<void> EventLoop::add(int fd, Handler handler, bool edge_triggered) {
    handlers_.push_back(std::make_unique<Handler>(std::move(handler)));
    epoll_event event{};
    event.events = EPOLLIN | (edge_triggered ? EPOLLET : 0u);
    event.data.ptr = handlers_.back().get();
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) != 0) return errno_error("epoll_ctl add fd {}", fd);
    return {};
}

void EventLoop::start(std::function<bool()> first) {
    thread_ = std::thread([this, first = std::move(first)] {
        if (!first || first()) run();
    });
}

void EventLoop::stop() {
    if (!thread_.joinable()) return;
    uint64_t one = 1;
    [[maybe_unused]] auto written = ::write(wakeup_.get(), &one, sizeof(one));
    thread_.join();
}

void EventLoop::run() {
    epoll_event events[16];
    for (;;) {
        int count = ::epoll_wait(epoll_.get(), events, 16, -1);
        if (count < 0) {
            if (errno == EINTR) continue;
            return;
        }
        for (int i = 0; i < count; ++i) {
            auto* handler = static_cast<Handler*>(events[i].data.ptr);
            if (handler == nullptr) return;
            (*handler)();
        }
    }
}

}  // namespace hospes
