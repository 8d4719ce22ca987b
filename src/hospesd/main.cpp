// hospesd: the toolstack daemon (toolstack/daemon.hpp, docs/api.md).
#include <csignal>
#include <filesystem>

#include <CLI/CLI.hpp>

#include "common/command_line.hpp"
#include "common/log.hpp"
#include "toolstack/daemon.hpp"
#include "toolstack/metrics.hpp"

int main(int argc, char** argv) {
    sigset_t signals;
    sigemptyset(&signals);
    for (int signal : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&signals, signal);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    CLI::App app{"hospesd: the hospes toolstack daemon; `hospes` (or `xl`) talks to it"};
    hospes::toolstack::DaemonOptions options;
    // The monitor program: `hospes` beside this one.
    options.monitor = (std::filesystem::canonical("/proc/self/exe").parent_path() / "hospes").string();
    // The block back-end: hospes-blkback beside it, when it is there.
    auto blkback = std::filesystem::canonical("/proc/self/exe").parent_path() / "hospes-blkback";
    if (std::filesystem::exists(blkback)) options.blkback = blkback.string();
    auto netback = blkback.parent_path() / "hospes-netback";
    if (std::filesystem::exists(netback)) options.netback = netback.string();
    bool verbose = false;
    app.add_option("--socket", options.socket, "the API's unix socket")->capture_default_str();
    app.add_option("--state-dir", options.state_dir, "where domains' state and logs are kept")->capture_default_str();
    app.add_option("--monitor", options.monitor, "the hospes program that runs each domain")->capture_default_str();
    app.add_option("--blkback", options.blkback,
                   "the hospes-blkback program, which serves every domain's disks (\"\": each monitor serves its own)")
        ->capture_default_str();
    app.add_option("--netback", options.netback,
                   "the hospes-netback program, one per bridge for the network cards on it (\"\": each monitor makes "
                   "its own taps)")
        ->capture_default_str();
    std::string metrics;
    app.add_option("--metrics", metrics, "serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9101)");
    bool no_cgroups = false;
    app.add_flag("--no-cgroups", no_cgroups, "leave the host's cgroups alone (cpu_weight and cap are not applied)");
    app.add_flag("--test-hooks", options.test_hooks, "monitors get the escape drill's test hook (for tests only)")
        ->group("");
    app.add_option("--image-dir", options.image_dirs,
                   "kernels, initrds and disk images must be under this directory (repeatable; default: anywhere)");
    bool no_jail = false;
    app.add_flag("--no-jail", no_jail, "run monitors unjailed, as root (for debugging; see docs/security.md)");
    app.add_option("--jail-uid-base", options.jail_uid_base,
                   "domain N's monitor runs as user and group BASE + N (a range no one else uses)")
        ->capture_default_str()
        ->check(CLI::Range(1u, 0xfff00000u));
    app.add_flag("-v,--verbose", verbose, "log debug messages");
    if (auto status = hospes::parse_command_line(app, argc, argv, "hospesd")) return *status;
    hospes::log::init(verbose, "hospesd");
    hospes::log::keep_recent(1000);  // xl dmesg
    options.cgroups = !no_cgroups;
    options.jail = !no_jail;
    auto daemon = hospes::toolstack::Daemon::create(options);
    if (!daemon) {
        hospes::log::error("{}", daemon.error().message);
        return hospes::exit_status_for(daemon.error());
    }
    std::unique_ptr<hospes::toolstack::MetricsServer> metrics_server;
    if (!metrics.empty()) {
        auto started = hospes::toolstack::MetricsServer::start(metrics, options.socket);
        if (!started) {
            hospes::log::error("{}", started.error().message);
            return hospes::exit_status_for(started.error());
        }
        metrics_server = std::move(*started);
    }
    return (*daemon)->run();
}
