// The monitor's I/O thread: waits on file descriptors (queue-notification
// eventfds, later backend completions) with epoll and runs each one's
// handler, until stopped.
#pragma once

#include <functional>
#include <thread>
#include <vector>

#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace hospes {

class EventLoop {
public:
    using Handler = std::function<void()>;

    static Result<EventLoop> create();
    EventLoop(EventLoop&&) = default;
    ~EventLoop();

    // Before start(): `handler` runs on the loop's thread when `fd` is
    // readable; edge-triggered: once per new event, even if the handler
    // leaves data unread.
    Result<void> add(int fd, Handler handler, bool edge_triggered = false);
    // Starts the loop's thread; `first` runs on it before any handler (its
    // seccomp filter): when it returns false, no handler runs.
    void start(std::function<bool()> first = {});
    void stop();

private:
    EventLoop() = default;
    void run();

    UniqueFd epoll_;
    UniqueFd wakeup_;
    std::vector<std::unique_ptr<Handler>> handlers_;
    std::thread thread_;
};

}  // namespace hospes
