// hospes-netback: the network driver domain. Serves many guests' network
// cards over vhost-user through a virtual switch (netback/server.hpp): a
// privileged supervisor opens the uplink and the sockets, a confined worker
// serves them and is restarted when it dies.
#include <csignal>

#include <CLI/CLI.hpp>

#include "common/command_line.hpp"
#include "common/log.hpp"
#include "driver_domain/control_socket.hpp"
#include "driver_domain/options.hpp"
#include "netback/control.hpp"
#include "netback/server.hpp"
#include "sandbox/supervisor.hpp"


int main(int argc, char** argv) {
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    CLI::App app{"hospes-netback: serves guests' network cards over vhost-user through a virtual switch"};
    std::string socket_dir, control, request, uplink;
    std::vector<std::string> ports;
    std::string user = "65534:65534";
    bool verbose = false, test_hooks = false;
    auto* dir_option = app.add_option("--socket-dir", socket_dir, "where each port's socket NAME.sock is made");
    app.add_option(
        "--port", ports,
        "NAME[,mac=MAC][,ip=ADDRESS]...[,weight=N][,tx_bps=N][,tx_pps=N][,rx_bps=N][,rx_pps=N][,tx_bps_burst=N]...: "
        "a guest's port; it may send only from MAC (default: derived from NAME and this host) and, when ip= are "
        "given, only from those IPv4/IPv6 addresses; caps on what it sends (tx) and receives (rx) in packets and "
        "bytes (K, M, G) per second, and its weight (1-10000, default 100) on a capped uplink");
    app.add_option("--uplink", uplink,
                   "tap=NAME and/or bridge=BR[,bps=N][,pps=N][,bps_burst=N][,pps_burst=N]: the switch's way out, a "
                   "tap (made when NAME is not given) on a host bridge, and the link's rate behind it, which guests "
                   "share by weight");
    app.add_option("--control", control, "the control socket (default: SOCKET_DIR/control)");
    std::string manage;
    app.add_option("--manage", manage,
                   "the management socket, where ports are added and removed while it runs (default: SOCKET_DIR/manage)");
    app.add_option("--send", request,
                   "send one JSON request to a running back-end's --control socket, print the answer and exit "
                   "(status 1 when it is an error)");
    app.add_option("--user", user, "UID[:GID] the worker runs as (when started as root)")->capture_default_str();
    app.add_flag("--test-hooks", test_hooks, "SIGUSR1 makes the worker try a forbidden system call (for tests)");
    app.add_flag("-v,--verbose", verbose, "log debug messages");
    if (auto status = hospes::parse_command_line(app, argc, argv, "hospes-netback")) return *status;
    hospes::log::init(verbose, "hospes-netback");
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
    options.name = "network";
    if (auto r = hospes::driver_domain::parse_user(user, options.confinement); !r) {
        hospes::log::error("{}", r.error().message);
        return hospes::kExitBadInput;
    }
    std::vector<hospes::netback::PortConfig> configs;
    for (const auto& spec : ports) {
        auto port = hospes::netback::parse_port(spec);
        if (!port) {
            hospes::log::error("{}", port.error().message);
            return hospes::kExitBadInput;
        }
        configs.push_back(std::move(*port));
    }
    std::optional<hospes::netback::UplinkConfig> uplink_config;
    if (!uplink.empty()) {
        auto parsed = hospes::netback::parse_uplink(uplink);
        if (!parsed) {
            hospes::log::error("{}", parsed.error().message);
            return hospes::kExitBadInput;
        }
        uplink_config = std::move(*parsed);
    }
    if (auto made = hospes::driver_domain::make_socket_dir(socket_dir); !made) {
        hospes::log::error("{}", made.error().message);
        return hospes::exit_status_for(made.error());
    }
    if (control.empty()) control = socket_dir + "/control";
    if (manage.empty()) manage = socket_dir + "/manage";
    auto server = hospes::netback::Server::create(socket_dir, std::move(configs), uplink_config, control);
    if (!server) {
        hospes::log::error("{}", server.error().message);
        return hospes::exit_status_for(server.error());
    }
    uint64_t worker_restarts = 0;
    options.restarts = &worker_restarts;
    options.worker_fds = [&] { return (*server)->worker_fds(); };
    auto manager = hospes::driver_domain::ManageSocket::listen(manage, [&](std::string_view line, int channel) {
        return hospes::netback::manage_answer(**server, line, channel, worker_restarts);
    });
    if (!manager) {
        hospes::log::error("{}", manager.error().message);
        return hospes::exit_status_for(manager.error());
    }
    return hospes::sandbox::supervise(options, hospes::netback::worker_allowlist(),
                                      [&](int channel) { return (*server)->serve(test_hooks, channel); }, manager->get());
}
