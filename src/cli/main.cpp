// hospes: the command line of the hypervisor.
#include <csignal>

#include <CLI/CLI.hpp>

#include "cli/create_command.hpp"
#include "cli/run_command.hpp"
#include "vhost_user/channel.hpp"
#include "cli/xl_commands.hpp"
#include "common/command_line.hpp"
#include "common/log.hpp"
#include "driver_domain/control_socket.hpp"
#include "vmm/stop_signal.hpp"

int main(int argc, char** argv) {
    // Before any thread exists: the stop signals and the vCPU kick are
    // handled only where the monitor waits for them.
    hospes::StopSignal::block_in_this_thread();
    sigset_t kick;
    sigemptyset(&kick);
    sigaddset(&kick, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &kick, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    // Also installed as `xl`: the same verbs under the name operators know.
    CLI::App app{"hospes: a paravirtualizing hypervisor on Linux KVM"};
    app.require_subcommand(1);
    app.fallthrough();  // -v is accepted after the subcommand too
    bool verbose = false;
    app.add_flag("-v,--verbose", verbose, "log debug messages");
    hospes::cli::RunOptions run_options;
    hospes::cli::add_run_command(app, run_options);
    hospes::cli::CreateOptions create_options;
    hospes::cli::add_create_command(app, create_options);
    hospes::cli::XlOptions xl_options;
    std::vector<CLI::App*> xl_verbs;
    hospes::cli::add_xl_commands(app, xl_options, xl_verbs);
    // A request to a running monitor's control socket, its answer printed.
    std::string control_path, control_request;
    auto* control = app.add_subcommand("control", "send one JSON request to a monitor's --control socket");
    control->add_option("socket", control_path, "the socket (hospes run --control)")->required();
    control->add_option("request", control_request, R"(e.g. '{"execute":"power-button"}')")->required();
    std::string connect_path;
    control->add_option("--connect", connect_path,
                        "connect to this unix socket and send the connection with the request (vhost-user-connect: "
                        "a jailed monitor's new connection to a back-end started again)");

    if (auto status = hospes::parse_command_line(app, argc, argv, "hospes")) return *status;
    hospes::log::init(verbose);
    if (app.got_subcommand("run")) return hospes::cli::run_command(run_options);
    if (app.got_subcommand("create")) return hospes::cli::create_command(create_options);
    if (app.got_subcommand("control")) {
        if (connect_path.empty()) return hospes::driver_domain::send_request(control_path, control_request);
        auto connection = hospes::vhost_user::connect_unix(connect_path);
        if (!connection) {
            hospes::log::error("--connect: {}", connection.error().message);
            return hospes::kExitHostError;
        }
        return hospes::driver_domain::send_request(control_path, control_request, connection->fd());
    }
    for (auto* verb : xl_verbs)
        if (verb->parsed()) return hospes::cli::xl_command(verb->get_name(), xl_options);
    return hospes::kExitBadInput;
}
