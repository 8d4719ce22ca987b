#include "toolstack/monitor_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "cli/device_options.hpp"
#include "cli/run_command.hpp"
#include "common/unique_fd.hpp"

namespace hospes::toolstack {

std::vector<std::string> monitor_arguments(const DomainConfig& domain, uint32_t id, const DomainPaths& paths,
                                           bool paused, const std::vector<std::string>& disk_sockets,
                                           const std::vector<std::string>& vif_sockets, uint32_t jail_uid) {
    std::vector<std::string> args = {"run",
                                     "--memory",
                                     // Booted with maxmem; the balloon then holds it at memory.
                                     fmt::format("{}M", std::max(domain.memory_mib, domain.maxmem_mib)),
                                     "--vcpus",
                                     std::to_string(domain.vcpus),
                                     "--control",
                                     paths.control,
                                     "--console-socket",
                                     paths.console,
                                     "--exit-file",
                                     paths.exit_file,
                                     // mem-set works through it, as Xen's balloon driver.
                                     "--balloon"};
    if (!domain.kernel.empty()) args.insert(args.end(), {"--kernel", domain.kernel});
    if (!domain.ramdisk.empty()) args.insert(args.end(), {"--initrd", domain.ramdisk});
    // The monitor's defaults (serial console, reboot and panic behaviour)
    // first: the domain's own words come later and win.
    if (!domain.cmdline.empty())
        args.insert(args.end(), {"--cmdline", std::string(cli::kDefaultCmdline) + " " + domain.cmdline});
    for (size_t i = 0; i < domain.disks.size(); ++i) {
        const auto& disk = domain.disks[i];
        args.insert(args.end(), {"--disk", i < disk_sockets.size() ? "vhost-user=" + disk_sockets[i]
                                                                  : disk.target + (disk.read_only ? ",ro" : "")});
    }
    for (size_t i = 0; i < domain.vifs.size(); ++i) {
        const auto& vif = domain.vifs[i];
        if (i < vif_sockets.size()) {
            // hospes-netback gives the card its MAC, addresses and cap.
            args.insert(args.end(), {"--net", "vhost-user=" + vif_sockets[i]});
            continue;
        }
        // Xen's names for the host side: vifDOMID.DEVID.
        std::string spec = "tap=" + (vif.vifname.empty() ? fmt::format("vif{}.{}", id, i) : vif.vifname);
        if (!vif.bridge.empty()) spec += ",bridge=" + vif.bridge;
        if (vif.mac) spec += ",mac=" + cli::format_mac(*vif.mac);
        // rate=: the card's transmit cap, with xl's credit per interval as its burst.
        if (vif.rate_bytes_per_second != 0)
            spec += fmt::format(",tx_bps={},tx_bps_burst={}", vif.rate_bytes_per_second,
                                std::max<uint64_t>(vif.rate_burst_bytes, 1));
        args.insert(args.end(), {"--net", spec});
    }
    // One list for all vCPUs, or one for each vCPU that exists (cpus= may
    // list maxvcpus of them).
    for (size_t i = 0; i < domain.cpus.size() && (domain.cpus.size() == 1 || i < domain.vcpus); ++i)
        args.insert(args.end(), {"--cpus", domain.cpus[i]});
    if (paused) args.push_back("--paused");
    if (jail_uid != 0) args.insert(args.end(), {"--jail", "--jail-user", fmt::format("{}:{}", jail_uid, jail_uid)});
    return args;
}

namespace {

// The monitor's last message, without its "hospes: error: " prefix.
std::string last_line(const std::string& path) {
    std::ifstream in(path);
    std::string line, last;
    while (std::getline(in, line))
        if (!line.empty()) last = line;
    for (std::string_view prefix : {": error: ", ": warning: "})
        if (auto at = last.find(prefix); at != std::string::npos && at < 20 && last.starts_with("hospes"))
            return last.substr(at + prefix.size());
    return last;
}

}  // namespace

Result<pid_t> start_monitor(const std::string& program, const std::vector<std::string>& arguments,
                            const DomainPaths& paths, std::chrono::milliseconds limit,
                            const std::string& cgroup_procs, std::string_view what, int network) {
    ::unlink(paths.control.c_str());
    ::unlink(paths.exit_file.c_str());
    UniqueFd null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    UniqueFd out(::open(paths.console_log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    UniqueFd err(::open(paths.monitor_log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    if (!null_fd.valid() || !out.valid() || !err.valid()) return errno_error("cannot open the {}'s log files", what);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(program.c_str()));
    for (const auto& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
    argv.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) return errno_error("fork");
    if (pid == 0) {
        // The monitor outlives hospesd: a session of its own, no terminal,
        // the signal mask and dispositions of a fresh process.
        ::setsid();
        ::dup2(null_fd.get(), STDIN_FILENO);
        ::dup2(out.get(), STDOUT_FILENO);
        ::dup2(err.get(), STDERR_FILENO);
        // (dup2 onto itself would keep close-on-exec.)
        if (network == kHandedNetworkFd)
            ::fcntl(network, F_SETFD, 0);
        else if (network >= 0)
            ::dup2(network, kHandedNetworkFd);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        ::signal(SIGPIPE, SIG_DFL);
        if (::chdir("/") != 0) ::_exit(127);
        if (!cgroup_procs.empty()) {
            int procs = ::open(cgroup_procs.c_str(), O_WRONLY | O_CLOEXEC);
            if (procs < 0 || ::write(procs, "0\n", 2) != 2) {
                std::string message = "hospesd: cannot enter the cgroup " + cgroup_procs + ": " + std::strerror(errno) + "\n";
                [[maybe_unused]] auto written = ::write(STDERR_FILENO, message.data(), message.size());
                ::_exit(126);
            }
            ::close(procs);
        }
        ::execv(program.c_str(), argv.data());
        ::_exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
        struct stat st{};
        if (::stat(paths.control.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) return pid;
        int status = 0;
        if (::waitpid(pid, &status, WNOHANG) == pid) {
            std::string why = last_line(paths.monitor_log);
            if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && why.empty())
                return host_error("cannot run the {} '{}'", what, program);
            return host_error("the {} ended at once: {}", what, why.empty() ? "(it said nothing)" : why);
        }
        if (std::chrono::steady_clock::now() > deadline) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            return host_error("the {} did not open its control socket within {} ms", what, limit.count());
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

namespace {

// One process's own figures: cpu ticks, start ticks, a thread running.
std::optional<ProcessStat> one_process(pid_t pid) {
    std::ifstream in(fmt::format("/proc/{}/stat", pid));
    std::string text;
    if (!std::getline(in, text)) return std::nullopt;
    // The command name (field 2) may hold spaces: count from its ')'.
    auto close = text.rfind(')');
    if (close == std::string::npos) return std::nullopt;
    std::istringstream fields(text.substr(close + 2));
    std::vector<std::string> f;
    for (std::string word; fields >> word;) f.push_back(word);
    // f[0] is field 3 (state); utime 14, stime 15, starttime 22.
    if (f.size() < 20 || f[0] == "Z") return std::nullopt;
    ProcessStat stat;
    stat.cpu_ticks = std::stoull(f[11]) + std::stoull(f[12]);
    stat.start_ticks = std::stoull(f[19]);
    std::error_code error;
    for (const auto& task : std::filesystem::directory_iterator(fmt::format("/proc/{}/task", pid), error)) {
        std::ifstream task_in(task.path() / "stat");
        std::string task_text;
        if (!std::getline(task_in, task_text)) continue;
        auto task_close = task_text.rfind(')');
        if (task_close != std::string::npos && task_close + 2 < task_text.size() && task_text[task_close + 2] == 'R')
            stat.running = true;
    }
    return stat;
}

}  // namespace

std::vector<pid_t> monitor_children(pid_t pid) {
    std::ifstream in(fmt::format("/proc/{}/task/{}/children", pid, pid));
    std::vector<pid_t> result;
    for (pid_t child; in >> child;) result.push_back(child);
    return result;
}

std::optional<ProcessStat> process_stat(pid_t pid) {
    auto stat = one_process(pid);
    if (!stat) return std::nullopt;
    for (pid_t child : monitor_children(pid)) {
        if (auto c = one_process(child)) {
            stat->cpu_ticks += c->cpu_ticks;
            stat->running = stat->running || c->running;
        }
    }
    return stat;
}

std::map<pid_t, pid_t> host_thread_ids(pid_t pid) {
    std::map<pid_t, pid_t> ids;
    auto processes = monitor_children(pid);
    processes.push_back(pid);
    for (pid_t process : processes) {
        std::error_code error;
        for (const auto& task : std::filesystem::directory_iterator(fmt::format("/proc/{}/task", process), error)) {
            std::ifstream status(task.path() / "status");
            for (std::string line; std::getline(status, line);) {
                if (!line.starts_with("NSpid:")) continue;
                std::istringstream numbers(line.substr(6));
                std::vector<pid_t> levels;
                for (pid_t n; numbers >> n;) levels.push_back(n);
                // The first is the host's, the last the thread's own namespace's.
                if (!levels.empty()) ids[levels.back()] = levels.front();
            }
        }
    }
    return ids;
}

Result<nlohmann::json> json_request(const std::string& control_socket, const nlohmann::json& request,
                                    std::chrono::seconds timeout_after, int fd) {
    // A monitor is no more trusted than its guest: its answer is waited for
    // at most `timeout` in all (not per read: one byte at a time would hold
    // hospesd for ever) and is at most 1 MiB.
    auto deadline = std::chrono::steady_clock::now() + timeout_after;
    UniqueFd socket(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!socket.valid()) return errno_error("socket");
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (control_socket.size() >= sizeof(address.sun_path)) return host_error("'{}': path too long", control_socket);
    std::memcpy(address.sun_path, control_socket.c_str(), control_socket.size());
    // A unix socket connects at once, or its backlog is full (EAGAIN).
    if (::connect(socket.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0)
        return errno_error("cannot connect to '{}'", control_socket);
    auto wait = [&](short events) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd ready{socket.get(), events, 0};
        return left.count() > 0 && ::poll(&ready, 1, static_cast<int>(left.count())) == 1;
    };
    std::string line = request.dump() + "\n";
    iovec data{line.data(), line.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))]{};
    msghdr message{};
    message.msg_iov = &data;
    message.msg_iovlen = 1;
    if (fd >= 0) {
        message.msg_control = control;
        message.msg_controllen = sizeof(control);
        cmsghdr* c = CMSG_FIRSTHDR(&message);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    if (!wait(POLLOUT) || ::sendmsg(socket.get(), &message, MSG_NOSIGNAL) != static_cast<ssize_t>(line.size()))
        return errno_error("cannot send to '{}'", control_socket);
    std::string answer;
    char buffer[4096];
    while (answer.find('\n') == std::string::npos) {
        if (!wait(POLLIN)) return host_error("no answer from '{}' within {} s", control_socket, timeout_after.count());
        ssize_t n = ::read(socket.get(), buffer, sizeof(buffer));
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) return host_error("no answer from '{}'", control_socket);
        answer.append(buffer, static_cast<size_t>(n));
        if (answer.size() > (1 << 20)) return host_error("the answer from '{}' is too long", control_socket);
    }
    auto json = nlohmann::json::parse(answer.substr(0, answer.find('\n')), nullptr, false);
    if (json.is_discarded() || !json.is_object()) return host_error("the answer from '{}' is not JSON", control_socket);
    if (auto error = json.find("error"); error != json.end())
        return host_error("{}", error->is_string() ? error->get<std::string>() : error->dump());
    return json.value("return", nlohmann::json::object());
}

}  // namespace hospes::toolstack
