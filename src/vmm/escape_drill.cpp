#include "vmm/escape_drill.hpp"

#include <pthread.h>

#include <fcntl.h>
#include <linux/io_uring.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hospes {

namespace {

nlohmann::json ended(long result) {
    int error = result < 0 ? errno : 0;
    return {{"result", result}, {"errno", error}, {"error", error != 0 ? std::strerror(error) : ""}};
}

}  // namespace

nlohmann::json run_escape_attempt(const EscapeAttempt& a) {
    errno = 0;
    const auto& w = a.what;
    if (w == "open") {
        int fd = ::open(a.path.c_str(), O_RDONLY | O_CLOEXEC);
        auto r = ended(fd);
        if (fd >= 0) ::close(fd);
        return r;
    }
    if (w == "write") {
        int fd = ::open(a.path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        auto r = ended(fd);
        if (fd >= 0) ::close(fd);
        return r;
    }
    if (w == "connect") {
        int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return ended(fd);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strncpy(address.sun_path, a.path.c_str(), sizeof(address.sun_path) - 1);
        auto r = ended(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)));
        ::close(fd);
        return r;
    }
    if (w == "process_vm_readv") {
        char buffer[64];
        iovec local{buffer, sizeof(buffer)}, remote{reinterpret_cast<void*>(0x400000), sizeof(buffer)};
        return ended(::process_vm_readv(a.pid, &local, 1, &remote, 1, 0));
    }
    if (w == "proc_mem") {
        std::string path = "/proc/" + std::to_string(a.pid) + "/mem";
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        auto r = ended(fd);
        if (fd >= 0) ::close(fd);
        return r;
    }
    if (w == "ptrace") return ended(::ptrace(PTRACE_ATTACH, a.pid, nullptr, nullptr));
    if (w == "kill") return ended(::kill(a.pid, SIGKILL));
    if (w == "execve") {
        char* argv[] = {const_cast<char*>(a.path.c_str()), nullptr};
        return ended(::execve(a.path.c_str(), argv, nullptr));
    }
    if (w == "fork") {
        pid_t pid = ::fork();
        if (pid == 0) ::_exit(0);
        auto r = ended(pid);
        if (pid > 0) ::waitpid(pid, nullptr, 0);
        return r;
    }
    if (w == "module") {
        // Any module image: loading needs CAP_SYS_MODULE before it is read.
        static const char image[] = "\x7f" "ELF";
        return ended(::syscall(SYS_init_module, image, sizeof(image), ""));
    }
    if (w == "io_uring") {
        io_uring_params params{};
        long fd = ::syscall(SYS_io_uring_setup, 4, &params);
        auto r = ended(fd);
        if (fd >= 0) ::close(static_cast<int>(fd));
        return r;
    }
    return {{"error", "unknown attempt '" + w + "'"}};
}

UnfilteredDrill::UnfilteredDrill() {
    thread_ = std::thread([this] {
        // Named (by itself: prctl, no /proc in the jail), so that a look
        // from outside can tell the one thread without a filter (only with
        // --test-escape-drill) from the monitor's own.
        ::pthread_setname_np(::pthread_self(), "drill-nofilter");
        std::unique_lock lock(mutex_);
        for (;;) {
            changed_.wait(lock, [this] { return stop_ || attempt_.has_value(); });
            if (stop_) return;
            auto attempt = std::move(*attempt_);
            attempt_.reset();
            lock.unlock();
            auto result = run_escape_attempt(attempt);
            lock.lock();
            result_ = std::move(result);
            changed_.notify_all();
        }
    });
}

UnfilteredDrill::~UnfilteredDrill() {
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
    }
    changed_.notify_all();
    thread_.join();
}

nlohmann::json UnfilteredDrill::run(const EscapeAttempt& attempt) {
    std::unique_lock lock(mutex_);
    result_.reset();
    attempt_ = attempt;
    changed_.notify_all();
    changed_.wait(lock, [this] { return result_.has_value(); });
    return std::move(*result_);
}

}  // namespace hospes
