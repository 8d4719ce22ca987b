// A shared driver domain hospesd runs for all its domains (hospes-blkback):
// started as the monitors are, in a session of its own so that it outlives
// hospesd; found again by the next hospesd from its state file (its pid and
// start time name the process); started again by hospesd when it ends.
// Requests go to its management socket (adding and removing a domain's
// devices) and its control socket (counters, policy).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace hospes::toolstack {

class BackendProcess {
public:
    // `arguments` follow the program; `dir` holds its sockets (it is the
    // back-end's --socket-dir), its log and the state file.
    BackendProcess(std::string name, std::string program, std::vector<std::string> arguments, std::string dir);

    const std::string& name() const { return name_; }
    const std::string& dir() const { return dir_; }
    pid_t pid() const { return pid_; }
    // Readable when the process ends; invalid while none runs.
    int pidfd() const { return pidfd_.get(); }
    // Times hospesd started it again after it ended (this hospesd's life).
    uint64_t restarts() const { return restarts_; }
    // Whether the process running now was adopted (not started by us).
    bool adopted() const { return adopted_; }

    // Takes over the process the state file names, when it still runs.
    bool adopt();
    // Starts it and waits for its management socket (10 s at most).
    Result<void> start();
    // After pidfd() became readable: reaps it (when it was our child).
    void ended();
    // Ends it (SIGTERM) and waits up to 5 s for it.
    void stop();

    Result<nlohmann::json> manage(const nlohmann::json& request) const;
    Result<nlohmann::json> control(const nlohmann::json& request) const;

private:
    void watch();

    std::string name_, program_;
    std::vector<std::string> arguments_;
    std::string dir_;
    pid_t pid_ = 0;
    UniqueFd pidfd_;
    uint64_t restarts_ = 0;
    bool started_before_ = false;
    bool adopted_ = false;
};

}  // namespace hospes::toolstack
