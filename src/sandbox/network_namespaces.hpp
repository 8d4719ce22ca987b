// Network namespaces made ahead: making one costs a jailed launch some
// 30 ms in the lab (a few natively), most of the jail's cost, so hospesd
// keeps a few ready, made on a thread of their own, and hands one to each
// monitor it starts (hospes run --jail-netns-fd). Each is used once: no two
// domains ever share one.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <thread>

#include "common/unique_fd.hpp"

namespace hospes::sandbox {

class NetworkNamespaces {
public:
    // Keeps `spare` ready (needs root).
    explicit NetworkNamespaces(size_t spare);
    ~NetworkNamespaces();
    NetworkNamespaces(const NetworkNamespaces&) = delete;
    NetworkNamespaces& operator=(const NetworkNamespaces&) = delete;

    // One made ahead, or an invalid descriptor when none is ready (the
    // monitor then makes its own).
    UniqueFd take();

private:
    void make_ahead();

    size_t spare_;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::deque<UniqueFd> ready_;
    bool stopping_ = false;
    std::thread maker_;
};

}  // namespace hospes::sandbox
