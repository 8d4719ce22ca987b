// hospes-blkback: the block driver domain. Serves many guests' disks over
// vhost-user; see blkback/server.hpp.
#include <csignal>

#include <CLI/CLI.hpp>

#include "blkback/server.hpp"
#include "common/log.hpp"

int main(int argc, char** argv) {
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    CLI::App app{"hospes-blkback: serves guests' disks over vhost-user"};
    std::string socket_dir;
    std::vector<std::string> disks;
    bool verbose = false;
    app.add_option("--socket-dir", socket_dir, "where each disk's socket NAME.sock is made")->required();
    app.add_option("--disk", disks, "NAME=PATH[,ro][,direct]: a disk to serve")->required();
    app.add_flag("-v,--verbose", verbose, "log debug messages");
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        hospes::log::init(false, "hospes-blkback");
        hospes::log::error("{}", e.what());
        return hospes::kExitBadInput;
    }
    hospes::log::init(verbose, "hospes-blkback");
    std::vector<hospes::blkback::DiskExport> exports;
    for (const auto& spec : disks) {
        auto e = hospes::blkback::parse_export(spec);
        if (!e) {
            hospes::log::error("{}", e.error().message);
            return hospes::kExitBadInput;
        }
        exports.push_back(std::move(*e));
    }
    auto server = hospes::blkback::Server::create(socket_dir, std::move(exports));
    if (!server) {
        hospes::log::error("{}", server.error().message);
        return hospes::exit_status_for(server.error());
    }
    return (*server)->run();
}
