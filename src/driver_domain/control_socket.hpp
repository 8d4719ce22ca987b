// The control socket of a driver domain (hospes-blkback, hospes-netback):
// a unix socket only root may use (0600) on which clients send one JSON
// request per line and read one answer line each (docs/running.md). The
// back-end's own code answers; this is the socket's side: at most
// kMaxClients at once, requests at most kMaxLine long, and a client that
// does not read its answers is dropped rather than waited for, so no
// client can stall the back-end.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "common/unique_fd.hpp"
#include "sandbox/supervisor.hpp"

namespace hospes::driver_domain {

class ControlSocket {
public:
    static constexpr size_t kMaxClients = 8;
    static constexpr size_t kMaxLine = 64 * 1024;
    using Answer = std::function<std::string(std::string_view request)>;

    static Result<ControlSocket> listen(const std::string& path);

    int listener() const { return listener_.get(); }
    // Also refuse clients whose SO_PEERCRED user is neither root nor this
    // process's own. (Not for a worker in a user namespace of its own,
    // where root outside is seen as the overflow user.)
    void check_peer_credentials() { check_peer_ = true; }
    // Takes a waiting client into `epoll`, tagged `first_tag` + its slot.
    void accept(int epoll, uint64_t first_tag);
    // Reads what client `slot` sent and answers each whole line.
    void serve(int epoll, size_t slot, const Answer& answer);
    // While an answer is made: the descriptors (at most kMaxFds) that came
    // with the request (SCM_RIGHTS); the answer may take them. Those left
    // are closed once it is answered.
    std::vector<UniqueFd>& received_fds() { return received_; }
    static constexpr size_t kMaxFds = 4;

private:
    struct Client {
        UniqueFd socket;
        std::string input;
        std::vector<UniqueFd> fds;
    };
    // false: drop the client.
    bool serve(Client& client, const Answer& answer);

    UniqueFd listener_;
    bool check_peer_ = false;
    std::vector<std::optional<Client>> clients_;
    std::vector<UniqueFd> received_;
};

// The management socket: a control socket the supervisor serves, for
// requests that need its privilege (adding a disk or a port: opening files,
// making sockets). The answer also gets the channel to the running worker.
class ManageSocket final : public sandbox::Manager {
public:
    using Answer = std::function<std::string(std::string_view request, int worker_channel)>;
    static Result<std::unique_ptr<ManageSocket>> listen(const std::string& path, Answer answer);
    int fd() const override { return epoll_.get(); }
    void ready(int worker_channel) override;

private:
    ManageSocket(ControlSocket socket, UniqueFd epoll, Answer answer)
        : socket_(std::move(socket)), epoll_(std::move(epoll)), answer_(std::move(answer)) {}
    ControlSocket socket_;
    UniqueFd epoll_;
    Answer answer_;
};

// A management socket's answer to one request line; NOUN is "disk" or "port":
//   {"execute": "add-NOUN", "NOUN": SPEC or {...}} -> {"return": {"socket": PATH}}
//   {"execute": "remove-NOUN", "NOUN": NAME}
//   {"execute": "status"}                  -> {"return": {"worker_restarts": N}}
// SPEC is the command line's option text (for people); hospesd sends the
// device as an object of named fields, so that no value of one field can
// be read as another's (a path holding ",weight=10000").
std::string manage_answer(std::string_view request, std::string_view noun,
                          const std::function<Result<std::string>(const nlohmann::json& device)>& add,
                          const std::function<Result<void>(std::string_view name)>& remove, uint64_t worker_restarts);

// The client's side, for `--send`: sends `request` to the socket at `path`
// (with `fd`, that descriptor too), prints the answer and returns 0, or 1
// when the answer is an error (and kExitHostError when there is none).
int send_request(const std::string& path, std::string request, int fd = -1);

}  // namespace hospes::driver_domain
