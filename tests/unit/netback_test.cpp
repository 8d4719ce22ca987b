// hospes-netback as a separate process, in a network namespace of the
// test's own: two guests (the monitor's vhost-user device and the fake
// driver over shared memfd memory) on its ports and an uplink tap whose far
// end is a packet socket. Frames go between the guests and out of the
// uplink, frames from a MAC not the port's are dropped, counted and logged
// once, the control socket shows the counters, and a worker that dies
// (killed, or by a forbidden system call) is replaced while the guests
// reconnect and go on.
#include <linux/virtio_ids.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "devices/virtio/net.hpp"
#include "support/fake_driver.hpp"
#include "support/net_namespace.hpp"
#include "vhost_user/device.hpp"

namespace hospes {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using devices::NetHeader;
using test_support::FakeDriver;
using Buffer = FakeDriver::Buffer;
using test_support::PacketSocket;
using Bytes = std::vector<uint8_t>;

constexpr uint16_t kRx = 0, kTx = 1;
constexpr uint8_t kMacA[6] = {0x02, 0, 0, 0, 0, 0xa}, kMacB[6] = {0x02, 0, 0, 0, 0, 0xb};
constexpr uint8_t kHost[6] = {0x02, 0x99, 0, 0, 0, 1}, kBroadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

Bytes frame(const uint8_t* to, const uint8_t* from, size_t payload, uint8_t seed) {
    Bytes f(14 + payload);
    std::memcpy(f.data(), to, 6);
    std::memcpy(f.data() + 6, from, 6);
    f[12] = 0x88;  // IEEE local experimental: nothing in the kernel answers it
    f[13] = 0xb5;
    for (size_t i = 0; i < payload; ++i) f[14 + i] = static_cast<uint8_t>(seed + i * 7);
    return f;
}

// One guest: a vhost-user virtio-net device and a driver with receive
// buffers posted.
struct Guest {
    std::unique_ptr<vhost_user::VhostUserDevice> device;
    std::unique_ptr<FakeDriver> driver;
    std::map<uint32_t, uint64_t> rx_buffers;  // head -> address

    void post_rx(int count) {
        for (int i = 0; i < count; ++i) {
            uint64_t at = driver->alloc(2048);
            auto head = driver->add_chain(kRx, {Buffer{at, 2048, true}});
            ASSERT_TRUE(head);
            rx_buffers[*head] = at;
        }
        driver->kick(kRx);
    }
    void send(const Bytes& f) {
        uint64_t header = driver->alloc(sizeof(NetHeader)), data = driver->alloc(f.size());
        driver->fill(data, f);
        ASSERT_TRUE(driver->add_chain(kTx, {Buffer{header, sizeof(NetHeader), false},
                                            Buffer{data, static_cast<uint32_t>(f.size()), false}}));
        driver->kick(kTx);
    }
    void pump() {
        int fd = device->backend_events()[0].fd;
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 0) > 0) device->backend_ready(0);
    }
};

class NetbackTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (::geteuid() != 0) GTEST_SKIP() << "needs root (taps, namespaces)";
        if (auto why = test_support::private_network(); !why.empty()) GTEST_SKIP() << why;
        std::ofstream("/proc/sys/net/ipv6/conf/default/disable_ipv6") << "1";
        dir_ = fs::temp_directory_path() / ("hospes-netback-test-" + std::to_string(::getpid()));
        fs::create_directories(dir_);
        start_backend();
        uplink_.emplace("nbup0");
        ASSERT_TRUE(uplink_->valid());
        connect(a_, "a");
        connect(b_, "b");
    }
    void TearDown() override {
        for (Guest* g : {&a_, &b_}) {
            g->driver.reset();
            g->device.reset();
        }
        stop_backend();
        if (!dir_.empty()) fs::remove_all(dir_);
    }

    void start_backend() {
        std::string log = (dir_ / "netback.log").string();
        backend_ = ::fork();
        ASSERT_GE(backend_, 0);
        if (backend_ == 0) {
            int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            ::dup2(fd, 2);
            std::vector<std::string> args = {HOSPES_NETBACK, "--socket-dir", dir_.string(),
                                             "--port",       "a,mac=02:00:00:00:00:0a",
                                             "--port",       "b,mac=02:00:00:00:00:0b",
                                             "--uplink",     "tap=nbup0",
                                             "--test-hooks"};
            std::vector<char*> argv;
            for (auto& arg : args) argv.push_back(arg.data());
            argv.push_back(nullptr);
            ::execv(HOSPES_NETBACK, argv.data());
            ::_exit(127);
        }
        for (int i = 0; i < 500 && !fs::exists(dir_ / "control"); ++i) std::this_thread::sleep_for(10ms);
        ASSERT_TRUE(fs::exists(dir_ / "control")) << log_text();
    }
    void stop_backend() {
        if (backend_ <= 0) return;
        ::kill(backend_, SIGTERM);
        int status = 0;
        ::waitpid(backend_, &status, 0);
        backend_ = -1;
    }
    std::string log_text() const {
        std::ifstream file(dir_ / "netback.log");
        std::stringstream text;
        text << file.rdbuf();
        return text.str();
    }
    static pid_t first_child(pid_t parent) {
        std::ifstream children("/proc/" + std::to_string(parent) + "/task/" + std::to_string(parent) + "/children");
        pid_t pid = 0;
        return children >> pid && pid > 0 ? pid : 0;
    }
    // The worker proper: as root, the supervisor's child only waits for it,
    // its own child, pid 1 of a pid namespace of its own.
    pid_t worker_pid() const {
        for (int i = 0; i < 500; ++i) {
            if (pid_t child = first_child(backend_); child > 0) {
                if (::geteuid() != 0) return child;
                if (pid_t worker = first_child(child); worker > 0) return worker;
            }
            std::this_thread::sleep_for(10ms);
        }
        return -1;
    }

    void connect(Guest& guest, const std::string& port) {
        auto device = vhost_user::VhostUserDevice::connect((dir_ / (port + ".sock")).string(), VIRTIO_ID_NET, 8, 2,
                                                           devices::VirtioNet::kQueueSize);
        ASSERT_TRUE(device) << device.error().message;
        guest.device = std::move(*device);
        guest.driver = std::make_unique<FakeDriver>(*guest.device);
        ASSERT_TRUE(guest.driver->start());
        guest.post_rx(16);
    }

    // The frames `guest` received within `time` (stops early once `count` came).
    std::vector<Bytes> received(Guest& guest, size_t count, std::chrono::milliseconds time = 2000ms) {
        std::vector<Bytes> got;
        auto end = std::chrono::steady_clock::now() + time;
        while (got.size() < count && std::chrono::steady_clock::now() < end) {
            a_.pump();
            b_.pump();
            auto used = guest.driver->next_used(kRx);
            if (!used) {
                std::this_thread::sleep_for(1ms);
                continue;
            }
            uint64_t at = guest.rx_buffers.at(used->id);
            auto bytes = guest.driver->bytes(at, used->length);
            got.emplace_back(bytes.begin() + sizeof(NetHeader), bytes.end());
            guest.post_rx(1);
        }
        return got;
    }
    // One request on the control (or management) socket; its whole answer.
    nlohmann::json control(const nlohmann::json& request, const char* socket = "control") {
        auto channel = vhost_user::connect_unix((dir_ / socket).string());
        EXPECT_TRUE(channel);
        std::string text = request.dump() + "\n", answer;
        EXPECT_EQ(::write(channel->fd(), text.data(), text.size()), static_cast<ssize_t>(text.size()));
        char c;
        while (::read(channel->fd(), &c, 1) == 1 && c != '\n') answer += c;
        return nlohmann::json::parse(answer);
    }
    nlohmann::json query() { return control({{"execute", "query"}})["return"]; }
    static nlohmann::json port(const nlohmann::json& state, const std::string& name) {
        for (const auto& p : state["ports"])
            if (p["name"] == name) return p;
        return {};
    }
    // Waits until both devices are connected again (after a worker died).
    void reconnect() {
        auto end = std::chrono::steady_clock::now() + 5s;
        while (std::chrono::steady_clock::now() < end && !(a_.device->connected() && b_.device->connected() &&
                                                           a_.device->reconnects() > reconnects_a_ &&
                                                           b_.device->reconnects() > reconnects_b_)) {
            a_.pump();
            b_.pump();
            std::this_thread::sleep_for(1ms);
        }
        reconnects_a_ = a_.device->reconnects();
        reconnects_b_ = b_.device->reconnects();
    }

    fs::path dir_;
    pid_t backend_ = -1;
    std::optional<PacketSocket> uplink_;
    Guest a_, b_;
    uint64_t reconnects_a_ = 0, reconnects_b_ = 0;
};

// An operator's --socket-dir that does not exist yet is made, private to
// the back-end (0700) as a service's runtime directory, parents and all.
TEST(NetbackSocketDir, AMissingSocketDirectoryIsMadePrivate) {
    auto top = fs::temp_directory_path() / ("hospes-netback-dir-test-" + std::to_string(::getpid()));
    auto dir = top / "run" / "net";
    fs::create_directories(top);
    pid_t backend = ::fork();
    ASSERT_GE(backend, 0);
    if (backend == 0) {
        ::execl(HOSPES_NETBACK, HOSPES_NETBACK, "--socket-dir", dir.c_str(), "--port", "a,mac=02:00:00:00:00:0a",
                static_cast<char*>(nullptr));
        ::_exit(127);
    }
    for (int i = 0; i < 500 && !fs::exists(dir / "a.sock"); ++i) std::this_thread::sleep_for(10ms);
    EXPECT_TRUE(fs::is_socket(dir / "a.sock"));
    struct stat st {};
    ASSERT_EQ(::stat(dir.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0700u);
    ::kill(backend, SIGTERM);
    int status = 0;
    ::waitpid(backend, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    fs::remove_all(top);
}

TEST_F(NetbackTest, TheBackEndGivesEachPortItsMac) {
    uint8_t config[8];
    a_.device->read_config(0, config);
    EXPECT_EQ(0, std::memcmp(config, kMacA, 6));
    EXPECT_EQ(config[6], 1) << "link up";
    b_.device->read_config(0, config);
    EXPECT_EQ(0, std::memcmp(config, kMacB, 6));
}

TEST_F(NetbackTest, GuestsReachEachOtherAndTheUplink) {
    auto hello = frame(kBroadcast, kMacA, 46, 1);
    a_.send(hello);
    EXPECT_EQ(received(b_, 1), std::vector<Bytes>{hello});
    EXPECT_EQ(uplink_->receive(), hello);

    auto to_a = frame(kMacA, kMacB, 1486, 2);
    b_.send(to_a);
    EXPECT_EQ(received(a_, 1), std::vector<Bytes>{to_a});

    auto from_host = frame(kMacB, kHost, 300, 3);
    ASSERT_TRUE(uplink_->send(from_host));
    EXPECT_EQ(received(b_, 1), std::vector<Bytes>{from_host});
    auto to_host = frame(kHost, kMacA, 100, 4);
    a_.send(to_host);
    EXPECT_EQ(uplink_->receive(), to_host);
    EXPECT_TRUE(received(b_, 1, 300ms).empty()) << "the host was learned behind the uplink";

    auto state = query();
    EXPECT_EQ(port(state, "a")["in_packets"], 2);
    EXPECT_EQ(port(state, "a")["out_packets"], 1);
    EXPECT_EQ(port(state, "b")["out_packets"], 2);
    EXPECT_EQ(port(state, "b")["out_bytes"], hello.size() + from_host.size());
    EXPECT_EQ(port(state, "nbup0")["uplink"], true);
    EXPECT_EQ(port(state, "nbup0")["in_packets"], 1);
    EXPECT_EQ(port(state, "a")["mac"], "02:00:00:00:00:0a");
}

TEST_F(NetbackTest, FramesFromAnotherMacAreDroppedCountedAndLoggedOnce) {
    for (int i = 0; i < 5; ++i) a_.send(frame(kBroadcast, kMacB, 46, static_cast<uint8_t>(i)));
    a_.send(frame(kBroadcast, kMacA, 46, 9));  // the one that passes, after the others
    auto got = received(b_, 1);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0], frame(kBroadcast, kMacA, 46, 9));
    EXPECT_EQ(uplink_->receive(), frame(kBroadcast, kMacA, 46, 9));
    auto state = query();
    EXPECT_EQ(port(state, "a")["drops"]["spoofed_mac"], 5);
    auto log = log_text();
    size_t lines = 0;
    for (size_t at = log.find("MAC address that is not the port's"); at != std::string::npos;
         at = log.find("MAC address that is not the port's", at + 1))
        ++lines;
    EXPECT_EQ(lines, 1u) << log;
}

TEST_F(NetbackTest, ADeadWorkerIsReplacedAndTheGuestsGoOn) {
    pid_t worker = worker_pid();
    ASSERT_GT(worker, 0);
    auto root = fs::path("/proc/" + std::to_string(worker) + "/root");
    EXPECT_TRUE(fs::is_empty(root)) << fs::read_symlink(root);
    a_.send(frame(kBroadcast, kMacA, 46, 1));
    ASSERT_EQ(received(b_, 1).size(), 1u);

    ::kill(worker, SIGKILL);
    reconnect();
    ASSERT_TRUE(a_.device->connected() && b_.device->connected()) << log_text();
    a_.send(frame(kMacB, kMacA, 46, 2));
    EXPECT_EQ(received(b_, 1), std::vector<Bytes>{frame(kMacB, kMacA, 46, 2)}) << log_text();

    // A forbidden system call (the test hook's execve) ends the worker too.
    worker = worker_pid();
    ::kill(worker, SIGUSR1);
    reconnect();
    auto log = log_text();
    EXPECT_NE(log.find("a system call outside its allowlist"), std::string::npos) << log;
    EXPECT_EQ(log.find("the forbidden execve returned"), std::string::npos) << log;
    b_.send(frame(kMacA, kMacB, 46, 3));
    EXPECT_EQ(received(a_, 1), std::vector<Bytes>{frame(kMacA, kMacB, 46, 3)}) << log;
    auto state = query();
    EXPECT_EQ(port(state, "a")["connections"], 3);
    EXPECT_GE(port(state, "b")["in_packets"], 1) << "counters outlive the workers";
}

// hospesd adds a domain's port to the running back-end and removes it when
// the domain goes: switched at once, served by later workers too, and gone
// from the switch after (its MAC is unknown again).
TEST_F(NetbackTest, PortsAreAddedAndRemovedWhileItRuns) {
    constexpr uint8_t kMacC[6] = {0x02, 0, 0, 0, 0, 0xc};
    auto manage = [&](const nlohmann::json& request) { return control(request, "manage"); };
    auto added = manage({{"execute", "add-port"}, {"port", "c,mac=02:00:00:00:00:0c,tx_bps=1M"}});
    EXPECT_EQ(added, nlohmann::json::parse(R"({"return":{"socket":")" + (dir_ / "c.sock").string() + R"("}})"));
    Guest c;
    connect(c, "c");
    auto to_c = frame(kMacC, kMacA, 200, 5);
    a_.send(to_c);
    // received() pumps a and b; c is pumped here.
    auto c_gets = [&](size_t count) {
        std::vector<Bytes> got;
        auto end = std::chrono::steady_clock::now() + 2s;
        while (got.size() < count && std::chrono::steady_clock::now() < end) {
            a_.pump();
            c.pump();
            auto used = c.driver->next_used(kRx);
            if (!used) {
                std::this_thread::sleep_for(1ms);
                continue;
            }
            auto bytes = c.driver->bytes(c.rx_buffers.at(used->id), used->length);
            got.emplace_back(bytes.begin() + sizeof(NetHeader), bytes.end());
            c.post_rx(1);
        }
        return got;
    };
    EXPECT_EQ(c_gets(1), std::vector<Bytes>{to_c}) << log_text();
    EXPECT_EQ(port(query(), "c")["tx_bps"], 1 << 20);

    // A worker started after the port came has it from the supervisor.
    ::kill(worker_pid(), SIGKILL);
    auto end = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < end && !(c.device->connected() && c.device->reconnects() > 0)) {
        c.pump();
        std::this_thread::sleep_for(1ms);
    }
    reconnect();
    a_.send(to_c);
    EXPECT_EQ(c_gets(1), std::vector<Bytes>{to_c}) << log_text();

    for (const auto& [request, error] : std::vector<std::pair<nlohmann::json, std::string>>{
             {{{"execute", "add-port"}, {"port", "c"}}, "the name 'c' is given twice"},
             {{{"execute", "add-port"}, {"port", "d,mac=02:00:00:00:00:0a"}}, "the same MAC address"},
             {{{"execute", "add-port"}, {"port", "d,ip=nowhere"}}, "'nowhere' is not an IPv4 or IPv6 address"},
             {{{"execute", "remove-port"}, {"port", "z"}}, "no port is named 'z'"},
             {{{"execute", "add-disk"}, {"disk", "x=/y"}}, "unknown command 'add-disk'"},
             {{{"execute", "add-port"}}, "add-port takes one"}}) {
        auto answer = manage(request);
        ASSERT_TRUE(answer.contains("error")) << request << " -> " << answer;
        EXPECT_NE(answer["error"].get<std::string>().find(error), std::string::npos) << answer;
    }
    EXPECT_EQ(manage({{"execute", "status"}}), nlohmann::json::parse(R"({"return":{"worker_restarts":1}})"));

    // Removed: the socket goes, and a frame for its MAC is an unknown
    // address again, flooded to the others.
    EXPECT_EQ(manage({{"execute", "remove-port"}, {"port", "c"}}), nlohmann::json::parse(R"({"return":{}})"));
    EXPECT_FALSE(fs::exists(dir_ / "c.sock"));
    EXPECT_TRUE(port(query(), "c").is_null());
    a_.send(to_c);
    EXPECT_EQ(received(b_, 1), std::vector<Bytes>{to_c}) << log_text();
    c.driver.reset();
    c.device.reset();
    // The name and the MAC may be used again.
    EXPECT_TRUE(manage({{"execute", "add-port"}, {"port", "c,mac=02:00:00:00:00:0c"}}).contains("return"));
}

TEST_F(NetbackTest, ATransmitCapSetThroughTheControlSocketHoldsTheGuestBackWithoutLoss) {
    // Requests that are wrong get one error line each and change nothing.
    EXPECT_EQ(control({{"execute", "set-port"}, {"port", "a"}, {"tx_pps", 50}, {"weight", 0}})["error"],
              "weight must be 1 to 10000");
    EXPECT_EQ(control({{"execute", "set-port"}, {"port", "z"}, {"tx_pps", 50}})["error"], "no port is named 'z'");
    EXPECT_TRUE(control({{"execute", "set-port"}, {"port", "a"}, {"speed", 1}})["error"].get<std::string>().starts_with(
        "unknown key 'speed'"));
    EXPECT_EQ(control({{"execute", "set-uplink"}, {"bps", -1}})["error"], "'bps' must be a number of at least 0");
    EXPECT_EQ(port(query(), "a")["tx_pps"], 0);

    ASSERT_TRUE(control({{"execute", "set-port"}, {"port", "a"}, {"tx_pps", 50}, {"tx_pps_burst", 5}})
                    .contains("return"));
    auto state = query();
    EXPECT_EQ(port(state, "a")["tx_pps"], 50);
    EXPECT_EQ(port(state, "a")["weight"], 100);
    // 30 frames at 50 a second after a burst of 5: half a second, and every
    // one arrives.
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 30; ++i) a_.send(frame(kHost, kMacA, 46, static_cast<uint8_t>(i)));
    int got = 0;
    for (int i = 0; i < 30; ++i)
        if (uplink_->receive() == frame(kHost, kMacA, 46, static_cast<uint8_t>(i))) ++got;
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_EQ(got, 30);
    EXPECT_GT(seconds, 0.45);
    EXPECT_LT(seconds, 1.5);
    EXPECT_GE(port(query(), "a")["held_tx"], 1);

    // A new worker keeps the policy as changed.
    ::kill(worker_pid(), SIGKILL);
    reconnect();
    EXPECT_EQ(port(query(), "a")["tx_pps"], 50);
}

}  // namespace
}  // namespace hospes
