// hospes-blkback: the block driver domain. Serves many guests' disks over
// vhost-user (blkback/server.hpp): a privileged supervisor opens the disks
// and sockets, a confined worker serves them and is restarted when it dies.
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>

#include <CLI/CLI.hpp>

#include "blkback/control.hpp"
#include "blkback/server.hpp"
#include "driver_domain/control_socket.hpp"
#include "driver_domain/options.hpp"
#include "common/command_line.hpp"
#include "common/log.hpp"
#include "sandbox/supervisor.hpp"
#include "vhost_user/channel.hpp"


int main(int argc, char** argv) {
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    CLI::App app{"hospes-blkback: serves guests' disks over vhost-user"};
    std::string socket_dir;
    std::vector<std::string> disks, host_disks;
    std::string control;
    std::string user = "65534:65534";
    bool verbose = false, test_hooks = false;
    auto* dir_option = app.add_option("--socket-dir", socket_dir, "where each disk's socket NAME.sock is made");
    app.add_option("--disk", disks,
                   "NAME=PATH[,ro][,direct][,weight=N][,iops=N][,bps=N[K|M|G]][,iops_burst=N][,bps_burst=N]: "
                   "a disk to serve, its weight (1-10000, default 100) and caps");
    app.add_option("--host-disk", host_disks,
                   "PATH[,depth=N][,iops=N][,bps=N][,iops_burst=N][,bps_burst=N]: the host disk PATH is (or is on): "
                   "requests at once (default 32) and caps for all the disks on it");
    app.add_option("--control", control, "the control socket (default: SOCKET_DIR/control)");
    std::string manage;
    app.add_option("--manage", manage,
                   "the management socket, where disks are added and removed while it runs (default: SOCKET_DIR/manage)");
    std::string request;
    app.add_option("--send", request,
                   "send one JSON request to a running back-end's --control socket, print the answer and exit "
                   "(status 1 when it is an error)");
    app.add_option("--user", user, "UID[:GID] the worker runs as (when started as root)")->capture_default_str();
    app.add_flag("--test-hooks", test_hooks, "SIGUSR1 makes the worker try a forbidden system call (for tests)");
    app.add_flag("-v,--verbose", verbose, "log debug messages");
    if (auto status = hospes::parse_command_line(app, argc, argv, "hospes-blkback")) return *status;
    hospes::log::init(verbose, "hospes-blkback");
    if (!request.empty()) {
        if (control.empty()) {
            hospes::log::error("--send needs --control SOCKET");
            return hospes::kExitBadInput;
        }
        return hospes::driver_domain::send_request(control, request);
    }
    if (dir_option->count() == 0) {
        hospes::log::error("--socket-dir is required");
        return hospes::kExitBadInput;
    }
    hospes::sandbox::SupervisorOptions options;
    options.name = "disk";
    if (auto r = hospes::driver_domain::parse_user(user, options.confinement); !r) {
        hospes::log::error("{}", r.error().message);
        return hospes::kExitBadInput;
    }
    std::vector<hospes::blkback::DiskExport> exports;
    for (const auto& spec : disks) {
        auto e = hospes::blkback::parse_export(spec);
        if (!e) {
            hospes::log::error("{}", e.error().message);
            return hospes::kExitBadInput;
        }
        exports.push_back(std::move(*e));
    }
    std::vector<hospes::blkback::HostDiskConfig> hosts;
    for (const auto& spec : host_disks) {
        auto h = hospes::blkback::parse_host_disk(spec);
        if (!h) {
            hospes::log::error("{}", h.error().message);
            return hospes::kExitBadInput;
        }
        hosts.push_back(std::move(*h));
    }
    if (auto made = hospes::driver_domain::make_socket_dir(socket_dir); !made) {
        hospes::log::error("{}", made.error().message);
        return hospes::exit_status_for(made.error());
    }
    if (control.empty()) control = socket_dir + "/control";
    if (manage.empty()) manage = socket_dir + "/manage";
    auto server = hospes::blkback::Server::create(socket_dir, std::move(exports), std::move(hosts), control);
    if (!server) {
        hospes::log::error("{}", server.error().message);
        return hospes::exit_status_for(server.error());
    }
    uint64_t worker_restarts = 0;
    options.restarts = &worker_restarts;
    options.prepare_worker = [&] { return (*server)->prepare_worker(); };
    options.worker_fds = [&] { return (*server)->worker_fds(); };
    options.worker_outgrown = [&] { return (*server)->worker_outgrown(); };
    auto manager = hospes::driver_domain::ManageSocket::listen(manage, [&](std::string_view line, int channel) {
        return hospes::blkback::manage_answer(**server, line, channel, worker_restarts);
    });
    if (!manager) {
        hospes::log::error("{}", manager.error().message);
        return hospes::exit_status_for(manager.error());
    }
    return hospes::sandbox::supervise(options, hospes::blkback::worker_allowlist(),
                                      [&](int channel) { return (*server)->serve(test_hooks, channel); }, manager->get());
}
