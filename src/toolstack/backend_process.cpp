#include "toolstack/backend_process.hpp"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <poll.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/log.hpp"
#include "toolstack/monitor_process.hpp"

namespace hospes::toolstack {

namespace {
int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }
}  // namespace

BackendProcess::BackendProcess(std::string name, std::string program, std::vector<std::string> arguments,
                               std::string dir)
    : name_(std::move(name)), program_(std::move(program)), arguments_(std::move(arguments)), dir_(std::move(dir)) {}

bool BackendProcess::adopt() {
    std::ifstream in(dir_ + "/" + name_ + ".json");
    auto state = nlohmann::json::parse(in, nullptr, false);
    if (!state.is_object()) return false;
    pid_t pid = state.value("pid", 0);
    auto stat = pid > 0 ? process_stat(pid) : std::nullopt;
    if (!stat || stat->start_ticks != state.value("start_ticks", uint64_t{0})) return false;
    pid_ = pid;
    watch();
    if (!pidfd_.valid()) return false;
    adopted_ = true;
    started_before_ = true;
    log::info("{}: process {} re-adopted", name_, pid_);
    return true;
}

Result<void> BackendProcess::start() {
    std::error_code error;
    std::filesystem::create_directories(dir_, error);
    if (error) return host_error("cannot create '{}': {}", dir_, error.message());
    std::string log = dir_ + "/" + name_ + ".log";
    DomainPaths paths{dir_ + "/manage", "", dir_ + "/" + name_ + ".exit", log, log};
    auto pid = start_monitor(program_, arguments_, paths, std::chrono::seconds(10), {}, name_);
    if (!pid) return std::unexpected(pid.error());
    pid_ = *pid;
    auto stat = process_stat(pid_);
    nlohmann::json state = {{"pid", pid_}, {"start_ticks", stat ? stat->start_ticks : 0}};
    std::string path = dir_ + "/" + name_ + ".json";
    {
        std::ofstream out(path + ".new", std::ios::trunc);
        out << state.dump() << "\n";
    }
    std::rename((path + ".new").c_str(), path.c_str());
    if (started_before_) ++restarts_;
    started_before_ = true;
    adopted_ = false;
    watch();
    log::info("{}: started, process {}", name_, pid_);
    return {};
}

void BackendProcess::watch() {
    pidfd_ = UniqueFd(pidfd_open(pid_));
    if (!pidfd_.valid()) log::error("{}: pidfd_open({}): {}", name_, pid_, std::strerror(errno));
}

void BackendProcess::ended() {
    int status = 0;
    ::waitpid(pid_, &status, WNOHANG);  // ours unless adopted
    pidfd_.reset();
    pid_ = 0;
}

void BackendProcess::stop() {
    if (!pidfd_.valid()) return;
    ::kill(pid_, SIGTERM);
    pollfd p{pidfd_.get(), POLLIN, 0};
    ::poll(&p, 1, 5000);
    ended();
}

Result<nlohmann::json> BackendProcess::manage(const nlohmann::json& request) const {
    return json_request(dir_ + "/manage", request);
}

Result<nlohmann::json> BackendProcess::control(const nlohmann::json& request) const {
    return json_request(dir_ + "/control", request, std::chrono::seconds(2));
}

}  // namespace hospes::toolstack
