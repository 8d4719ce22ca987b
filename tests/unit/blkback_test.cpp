// hospes-blkback as a separate process, driven through the monitor's own
// vhost-user device (VhostUserDevice) by the fake driver over shared memfd
// guest memory: requests reach the image file, a SIGKILLed back-end is
// replaced and the device reconnects without losing a write, and malformed
// vhost-user messages end only the connection that sent them.
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "blkback/server.hpp"
#include "common/unique_fd.hpp"
#include "support/fake_driver.hpp"
#include "vhost_user/channel.hpp"
#include "vhost_user/device.hpp"

namespace hospes {
namespace {

namespace fs = std::filesystem;
using test_support::FakeDriver;
using Buffer = FakeDriver::Buffer;
using namespace std::chrono_literals;

constexpr uint64_t kDiskSize = 4 << 20;

class BlkbackTest : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() / ("hospes-blkback-test-" + std::to_string(::getpid()));
        fs::create_directories(dir_);
        image_ = dir_ / "disk.img";
        other_ = dir_ / "other.img";
        for (const auto& path : {image_, other_}) {
            std::ofstream file(path, std::ios::binary);
            file.seekp(kDiskSize - 1);
            file.put(0);
        }
        start_backend();
    }
    void TearDown() override {
        driver_.reset();
        device_.reset();
        stop_backend();
        fs::remove_all(dir_);
    }

    void start_backend() {
        std::string log = (dir_ / "blkback.log").string();
        backend_ = ::fork();
        ASSERT_GE(backend_, 0);
        if (backend_ == 0) {
            int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            ::dup2(fd, 2);
            std::vector<std::string> args = {HOSPES_BLKBACK, "--socket-dir", dir_.string(),
                                             "--disk",       "d0=" + image_.string() + disk_options_[0],
                                             "--disk",       "d1=" + other_.string() + disk_options_[1]};
            if (test_hooks_) args.push_back("--test-hooks");
            args.insert(args.end(), extra_args_.begin(), extra_args_.end());
            std::vector<char*> argv;
            for (auto& arg : args) argv.push_back(arg.data());
            argv.push_back(nullptr);
            ::execv(HOSPES_BLKBACK, argv.data());
            ::_exit(127);
        }
        // Ready when the last socket exists.
        for (int i = 0; i < 500 && !fs::exists(dir_ / "d1.sock"); ++i) std::this_thread::sleep_for(10ms);
        ASSERT_TRUE(fs::exists(dir_ / "d1.sock")) << backend_log();
    }
    void stop_backend(int signal = SIGTERM) {
        if (backend_ <= 0) return;
        ::kill(backend_, signal);
        int status = 0;
        ::waitpid(backend_, &status, 0);
        backend_ = -1;
        fs::remove(dir_ / "d0.sock");
        fs::remove(dir_ / "d1.sock");
    }
    std::string backend_log() const {
        std::ifstream file(dir_ / "blkback.log");
        std::stringstream text;
        text << file.rdbuf();
        return text.str();
    }

    // The supervisor's child, the worker, once it is there.
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
    static size_t count(const std::string& text, const std::string& what) {
        size_t n = 0;
        for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
        return n;
    }

    // One JSON request line to the back-end's socket `name` ("control" or
    // "manage"), and its answer.
    std::string request(const char* name, const std::string& text) {
        auto channel = vhost_user::connect_unix((dir_ / name).string());
        EXPECT_TRUE(channel) << channel.error().message;
        if (!channel) return {};
        std::string line = text + "\n";
        EXPECT_EQ(::write(channel->fd(), line.data(), line.size()), static_cast<ssize_t>(line.size()));
        std::string answer;
        char c;
        while (::read(channel->fd(), &c, 1) == 1 && c != '\n') answer += c;
        return answer;
    }

    void connect(const std::string& disk = "d0") {
        auto device = vhost_user::VhostUserDevice::connect((dir_ / (disk + ".sock")).string(), VIRTIO_ID_BLOCK,
                                                           sizeof(virtio_blk_config), 1, 256);
        ASSERT_TRUE(device) << device.error().message;
        device_ = std::move(*device);
        driver_ = std::make_unique<FakeDriver>(*device_);
        auto started = driver_->start();
        ASSERT_TRUE(started) << started.error().message;
    }

    // Lets the device handle its socket and retry timer, as the monitor's
    // I/O thread does, for up to `time`.
    void pump(std::chrono::milliseconds time) {
        auto end = std::chrono::steady_clock::now() + time;
        int fd = device_->backend_events()[0].fd;
        while (std::chrono::steady_clock::now() < end) {
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 10) > 0) device_->backend_ready(0);
        }
    }

    // A request with its own buffers; the status byte starts at 0xff.
    struct Request {
        uint64_t header, data, status;
        uint32_t size;
    };
    Request submit(uint32_t type, uint64_t sector, uint32_t size, uint8_t fill) {
        Request r{driver_->alloc(16), driver_->alloc(size, 512), driver_->alloc(1), size};
        struct {
            uint32_t type, reserved;
            uint64_t sector;
        } header{type, 0, sector};
        driver_->put(r.header, header);
        driver_->put<uint8_t>(r.status, 0xff);
        bool write = type == VIRTIO_BLK_T_OUT;
        if (write) {
            std::vector<uint8_t> data(size, fill);
            driver_->fill(r.data, data);
        }
        auto head = driver_->add_chain(0, {Buffer{r.header, 16, false}, Buffer{r.data, size, !write},
                                           Buffer{r.status, 1, true}});
        EXPECT_TRUE(head);
        return r;
    }
    // Waits until `count` more used elements arrived.
    bool wait_used(int count, std::chrono::milliseconds time = 5000ms) {
        auto end = std::chrono::steady_clock::now() + time;
        while (count > 0 && std::chrono::steady_clock::now() < end) {
            if (driver_->next_used(0))
                --count;
            else
                pump(1ms);
        }
        return count == 0;
    }
    std::vector<uint8_t> image_bytes(uint64_t offset, size_t size, const fs::path& image = {}) {
        std::vector<uint8_t> bytes(size);
        std::ifstream file(image.empty() ? image_ : image, std::ios::binary);
        file.seekg(static_cast<std::streamoff>(offset));
        file.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
        return bytes;
    }

    fs::path dir_, image_, other_;
    pid_t backend_ = -1;
    bool test_hooks_ = false;
    std::string disk_options_[2];          // appended to each --disk
    std::vector<std::string> extra_args_;  // more options for hospes-blkback
    std::unique_ptr<vhost_user::VhostUserDevice> device_;
    std::unique_ptr<FakeDriver> driver_;
};

TEST_F(BlkbackTest, OffersBlockFeaturesAndConfigurationFromTheBackend) {
    connect();
    EXPECT_TRUE(device_->features() & (1ull << VIRTIO_BLK_F_FLUSH));
    EXPECT_TRUE(device_->features() & virtio::kFeatureEventIndex);
    uint64_t capacity = 0;
    device_->read_config(0, {reinterpret_cast<uint8_t*>(&capacity), 8});
    EXPECT_EQ(capacity, kDiskSize / 512);
}

TEST_F(BlkbackTest, WritesReachTheImageAndReadBack) {
    connect();
    auto write = submit(VIRTIO_BLK_T_OUT, 8, 4096, 0x5a);
    driver_->kick(0);
    ASSERT_TRUE(wait_used(1)) << backend_log();
    EXPECT_EQ(driver_->get<uint8_t>(write.status), VIRTIO_BLK_S_OK);
    EXPECT_EQ(image_bytes(8 * 512, 4096), std::vector<uint8_t>(4096, 0x5a));

    auto read = submit(VIRTIO_BLK_T_IN, 8, 4096, 0);
    driver_->kick(0);
    ASSERT_TRUE(wait_used(1));
    EXPECT_EQ(driver_->get<uint8_t>(read.status), VIRTIO_BLK_S_OK);
    auto bytes = driver_->bytes(read.data, 4096);
    EXPECT_EQ(std::vector<uint8_t>(bytes.begin(), bytes.end()), std::vector<uint8_t>(4096, 0x5a));
}

TEST_F(BlkbackTest, ABackendKilledAndRestartedLosesNoWrite) {
    connect();
    // Ten rounds: requests made available while the worker is stopped, then
    // it is killed (its supervisor starts another at once) or, every other
    // round, the whole back-end is killed and started again; the new worker
    // must take them all over.
    std::vector<Request> requests;
    for (int round = 0; round < 10; ++round) {
        pid_t worker = worker_pid();
        ASSERT_GT(worker, 0) << backend_log();
        ::kill(worker, SIGSTOP);
        for (int i = 0; i < 8; ++i)
            requests.push_back(submit(VIRTIO_BLK_T_OUT, static_cast<uint64_t>(requests.size()) * 8, 4096,
                                      static_cast<uint8_t>(requests.size() + 1)));
        driver_->kick(0);
        if (round % 2 == 0) {
            ::kill(worker, SIGKILL);
        } else {
            stop_backend(SIGKILL);
            start_backend();
        }
        ASSERT_TRUE(wait_used(8)) << "round " << round << "\n" << backend_log();
    }
    EXPECT_EQ(device_->reconnects(), 10u);
    EXPECT_EQ(count(backend_log(), "worker killed by signal 9"), 5u) << backend_log();
    for (size_t i = 0; i < requests.size(); ++i) {
        EXPECT_EQ(driver_->get<uint8_t>(requests[i].status), VIRTIO_BLK_S_OK) << i;
        EXPECT_EQ(image_bytes(i * 8 * 512, 4096), std::vector<uint8_t>(4096, static_cast<uint8_t>(i + 1))) << i;
    }
}

// hospesd adds a domain's disks to the running back-end and removes them
// when the domain goes: the supervisor opens the disk and makes the socket,
// the worker serves it, and a worker started later serves it too.
TEST_F(BlkbackTest, DisksAreAddedAndRemovedWhileItRuns) {
    fs::path third = dir_ / "third.img";
    {
        std::ofstream file(third, std::ios::binary);
        file.seekp(kDiskSize - 1);
        file.put(0);
    }
    auto locked = [&] {
        UniqueFd fd(::open(third.c_str(), O_RDONLY | O_CLOEXEC));
        return ::flock(fd.get(), LOCK_EX | LOCK_NB) != 0;
    };
    EXPECT_FALSE(locked());
    std::string add = R"({"execute":"add-disk","disk":"d2=)" + third.string() + R"(,weight=300"})";
    EXPECT_EQ(request("manage", add), R"({"return":{"socket":")" + (dir_ / "d2.sock").string() + R"("}})");
    EXPECT_TRUE(locked());

    connect("d2");
    auto first = submit(VIRTIO_BLK_T_OUT, 16, 4096, 0x5a);
    driver_->kick(0);
    ASSERT_TRUE(wait_used(1)) << backend_log();
    EXPECT_EQ(driver_->get<uint8_t>(first.status), VIRTIO_BLK_S_OK);
    EXPECT_EQ(image_bytes(16 * 512, 4096, third), std::vector<uint8_t>(4096, 0x5a));
    auto query = request("control", R"({"execute":"query"})");
    EXPECT_NE(query.find(R"("name":"d2")"), std::string::npos) << query;
    EXPECT_NE(query.find(R"("weight":300)"), std::string::npos) << query;

    // A worker started after the disk came has it from the supervisor.
    pid_t worker = worker_pid();
    ASSERT_GT(worker, 0);
    ::kill(worker, SIGKILL);
    auto second = submit(VIRTIO_BLK_T_OUT, 32, 4096, 0xa5);
    driver_->kick(0);
    ASSERT_TRUE(wait_used(1)) << backend_log();
    EXPECT_EQ(driver_->get<uint8_t>(second.status), VIRTIO_BLK_S_OK);
    EXPECT_EQ(image_bytes(32 * 512, 4096, third), std::vector<uint8_t>(4096, 0xa5));
    EXPECT_EQ(device_->reconnects(), 1u);

    struct Case {
        std::string request, error;
    } cases[] = {
        {add, "a disk named 'd2' is served already"},
        {R"({"execute":"add-disk","disk":"d3"})", "expected NAME=PATH"},
        {R"({"execute":"add-disk","disk":"d3=/nonexistent/disk.img"})", "/nonexistent/disk.img"},
        {R"({"execute":"add-disk","disk":"d3=)" + third.string() + R"("})", "in use by another guest"},
        {R"({"execute":"remove-disk","disk":"d9"})", "no disk is named 'd9'"},
        {R"({"execute":"eject","disk":"d2"})", "unknown command 'eject'"},
        {R"({"execute":"add-disk"})", "add-disk takes one"},
        {"nonsense", "must be a JSON object"},
    };
    for (const auto& c : cases) {
        auto answer = request("manage", c.request);
        EXPECT_TRUE(answer.starts_with(R"({"error":")")) << c.request << " -> " << answer;
        EXPECT_NE(answer.find(c.error), std::string::npos) << c.request << " -> " << answer;
    }

    // Removed: its socket goes, its connection ends and its disk is free;
    // the others are still served.
    EXPECT_EQ(request("manage", R"({"execute":"remove-disk","disk":"d2"})"), R"({"return":{}})");
    EXPECT_FALSE(fs::exists(dir_ / "d2.sock"));
    for (int i = 0; i < 200 && locked(); ++i) std::this_thread::sleep_for(10ms);
    EXPECT_FALSE(locked()) << backend_log();
    query = request("control", R"({"execute":"query"})");
    EXPECT_EQ(query.find(R"("name":"d2")"), std::string::npos) << query;
    driver_.reset();
    device_.reset();
    connect("d0");
    auto third_request = submit(VIRTIO_BLK_T_OUT, 0, 4096, 0x11);
    driver_->kick(0);
    ASSERT_TRUE(wait_used(1)) << backend_log();
    EXPECT_EQ(driver_->get<uint8_t>(third_request.status), VIRTIO_BLK_S_OK);
    // The name may be used again.
    EXPECT_TRUE(request("manage", add).starts_with(R"({"return")")) << backend_log();
}

// A running worker may not make io_urings: the disks added while it runs
// go into the spare rings it started with, and one more than those makes a
// new worker (with a ring for every disk) take over; a guest connected
// then reconnects and loses nothing.
TEST_F(BlkbackTest, DisksBeyondTheWorkersSpareRingsStartANewWorker) {
    auto write_and_check = [&](const std::string& disk, const fs::path& image, uint64_t sector, uint8_t fill) {
        auto r = submit(VIRTIO_BLK_T_OUT, sector, 4096, fill);
        driver_->kick(0);
        ASSERT_TRUE(wait_used(1)) << disk << ": " << backend_log();
        EXPECT_EQ(driver_->get<uint8_t>(r.status), VIRTIO_BLK_S_OK) << disk;
        EXPECT_EQ(image_bytes(sector * 512, 4096, image), std::vector<uint8_t>(4096, fill)) << disk;
    };
    std::vector<fs::path> images;
    for (size_t i = 0; i <= blkback::Server::kSpareRings; ++i) {
        images.push_back(dir_ / fmt::format("added{}.img", i));
        std::ofstream file(images.back(), std::ios::binary);
        file.seekp(kDiskSize - 1);
        file.put(0);
    }
    auto add = [&](size_t i) {
        return request("manage", fmt::format(R"({{"execute":"add-disk","disk":"a{}={}"}})", i, images[i].string()));
    };
    auto restarts = [&] { return request("manage", R"({"execute":"status"})"); };
    pid_t worker = worker_pid();
    for (size_t i = 0; i + 1 < blkback::Server::kSpareRings; ++i) EXPECT_TRUE(add(i).starts_with(R"({"return")"));
    connect("a0");
    write_and_check("a0", images[0], 8, 0x21);
    // A disk in a spare ring, removed, is let go of at once (the ring
    // lives in the worker alone): it can be added again, into the last spare.
    EXPECT_EQ(request("manage", R"({"execute":"remove-disk","disk":"a1"})"), R"({"return":{}})");
    EXPECT_TRUE(add(1).starts_with(R"({"return")")) << "a removed disk stays locked: " << backend_log();
    EXPECT_EQ(worker_pid(), worker) << "the spare rings took every added disk";
    EXPECT_EQ(restarts(), R"({"return":{"worker_restarts":0}})");

    auto last = blkback::Server::kSpareRings;
    EXPECT_TRUE(add(last).starts_with(R"({"return")")) << backend_log();
    EXPECT_EQ(restarts(), R"({"return":{"worker_restarts":1}})");
    write_and_check("a0", images[0], 16, 0x22);
    EXPECT_EQ(device_->reconnects(), 1u);
    driver_.reset();
    device_.reset();
    connect(fmt::format("a{}", last));
    write_and_check("the last", images[last], 24, 0x23);
}

// The same front-end against qemu-storage-daemon's vhost-user-blk export:
// a back-end nobody here wrote.
TEST_F(BlkbackTest, TheFrontEndWorksWithQemuStorageDaemon) {
    stop_backend();
    if (::access("/usr/bin/qemu-storage-daemon", X_OK) != 0) GTEST_SKIP() << "qemu-storage-daemon is not installed";
    std::string socket = (dir_ / "qsd.sock").string();
    pid_t qsd = ::fork();
    ASSERT_GE(qsd, 0);
    if (qsd == 0) {
        std::string blockdev = "driver=file,node-name=d0,filename=" + image_.string();
        std::string exp = "type=vhost-user-blk,id=e0,node-name=d0,addr.type=unix,addr.path=" + socket + ",writable=on";
        ::execl("/usr/bin/qemu-storage-daemon", "qemu-storage-daemon", "--blockdev", blockdev.c_str(), "--export",
                exp.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }
    for (int i = 0; i < 500 && !fs::exists(socket); ++i) std::this_thread::sleep_for(10ms);
    auto device = vhost_user::VhostUserDevice::connect(socket, VIRTIO_ID_BLOCK, sizeof(virtio_blk_config), 1, 256);
    ASSERT_TRUE(device) << device.error().message;
    device_ = std::move(*device);
    uint64_t capacity = 0;
    device_->read_config(0, {reinterpret_cast<uint8_t*>(&capacity), 8});
    EXPECT_EQ(capacity, kDiskSize / 512);
    driver_ = std::make_unique<FakeDriver>(*device_);
    ASSERT_TRUE(driver_->start());
    auto write = submit(VIRTIO_BLK_T_OUT, 16, 4096, 0x3c);
    driver_->kick(0);
    EXPECT_TRUE(wait_used(1));
    EXPECT_EQ(driver_->get<uint8_t>(write.status), VIRTIO_BLK_S_OK);
    auto read = submit(VIRTIO_BLK_T_IN, 16, 4096, 0);
    driver_->kick(0);
    EXPECT_TRUE(wait_used(1));
    auto bytes = driver_->bytes(read.data, 4096);
    EXPECT_EQ(std::vector<uint8_t>(bytes.begin(), bytes.end()), std::vector<uint8_t>(4096, 0x3c));
    driver_.reset();
    device_.reset();
    ::kill(qsd, SIGTERM);
    ::waitpid(qsd, nullptr, 0);
    EXPECT_EQ(image_bytes(16 * 512, 4096), std::vector<uint8_t>(4096, 0x3c));
}

// The worker runs confined: as root, an unprivileged user in an empty, removed root
// directory; always, a system call allowlist. A forbidden call (the test
// hook opens a disk by path) kills the worker only; the supervisor starts
// another and the guest's I/O goes on.
TEST_F(BlkbackTest, AForbiddenSystemCallKillsOnlyTheWorker) {
    stop_backend();
    test_hooks_ = true;
    start_backend();
    connect();
    pid_t worker = worker_pid();
    ASSERT_GT(worker, 0);
    if (::geteuid() == 0) {
        std::ifstream status("/proc/" + std::to_string(worker) + "/status");
        std::string line, uid;
        while (std::getline(status, line))
            if (line.starts_with("Uid:")) uid = line;
        EXPECT_EQ(uid, "Uid:\t65534\t65534\t65534\t65534") << "the worker runs as nobody";
        auto root = fs::path("/proc/" + std::to_string(worker) + "/root");
        EXPECT_TRUE(fs::is_empty(root)) << "the worker sees no host file: " << fs::read_symlink(root);
        // An empty root of a mount namespace of its own (pivot_root): it
        // leaves nothing behind on the host, even after a SIGKILL of the
        // whole back-end.
        auto ns = [](const std::string& pid, const char* kind) {
            return fs::read_symlink("/proc/" + pid + "/ns/" + kind).string();
        };
        for (const char* kind : {"mnt", "net", "pid", "ipc", "uts"})
            EXPECT_NE(ns(std::to_string(worker), kind), ns("self", kind)) << kind;
    }
    auto before = submit(VIRTIO_BLK_T_OUT, 0, 4096, 0x21);
    driver_->kick(0);
    ASSERT_TRUE(wait_used(1));
    ::kill(worker, SIGUSR1);
    for (int i = 0; i < 200 && count(backend_log(), "starting it again") == 0; ++i) pump(10ms);
    auto log = backend_log();
    EXPECT_NE(log.find("test hook: opening"), std::string::npos) << log;
    EXPECT_NE(log.find("killed by signal 31 (Bad system call): a system call outside its allowlist"), std::string::npos)
        << log;
    EXPECT_EQ(log.find("the forbidden open returned"), std::string::npos) << log;
    EXPECT_NE(worker_pid(), worker);
    auto after = submit(VIRTIO_BLK_T_OUT, 8, 4096, 0x22);
    driver_->kick(0);
    ASSERT_TRUE(wait_used(1)) << backend_log();
    EXPECT_EQ(driver_->get<uint8_t>(before.status), VIRTIO_BLK_S_OK);
    EXPECT_EQ(driver_->get<uint8_t>(after.status), VIRTIO_BLK_S_OK);
    EXPECT_EQ(image_bytes(8 * 512, 4096), std::vector<uint8_t>(4096, 0x22));
}

// An operator's --socket-dir that does not exist yet is made, private to
// the back-end (0700) as a service's runtime directory, parents and all.
TEST(BlkbackSocketDir, AMissingSocketDirectoryIsMadePrivate) {
    auto top = fs::temp_directory_path() / ("hospes-blkback-dir-test-" + std::to_string(::getpid()));
    auto dir = top / "run" / "blk";
    fs::create_directories(top);
    auto image = top / "disk.img";
    std::ofstream{image}.close();
    fs::resize_file(image, kDiskSize);
    pid_t backend = ::fork();
    ASSERT_GE(backend, 0);
    if (backend == 0) {
        ::execl(HOSPES_BLKBACK, HOSPES_BLKBACK, "--socket-dir", dir.c_str(), "--disk", ("d0=" + image.string()).c_str(),
                static_cast<char*>(nullptr));
        ::_exit(127);
    }
    for (int i = 0; i < 500 && !fs::exists(dir / "d0.sock"); ++i) std::this_thread::sleep_for(10ms);
    EXPECT_TRUE(fs::is_socket(dir / "d0.sock"));
    struct stat st {};
    ASSERT_EQ(::stat(dir.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0700u);
    ::kill(backend, SIGTERM);
    int status = 0;
    ::waitpid(backend, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    fs::remove_all(top);
}

// Raw vhost-user messages to d1 while d0 serves a guest.
class BlkbackMalformedTest : public BlkbackTest {
protected:
    vhost_user::Channel raw() {
        auto channel = vhost_user::connect_unix((dir_ / "d1.sock").string());
        EXPECT_TRUE(channel) << channel.error().message;
        return std::move(*channel);
    }
    // True when the back-end closed the connection.
    static bool closed(vhost_user::Channel& channel) {
        pollfd p{channel.fd(), POLLIN, 0};
        if (::poll(&p, 1, 2000) <= 0) return false;
        char byte;
        return ::recv(channel.fd(), &byte, 1, MSG_DONTWAIT) == 0;
    }
    void still_serves_d0() {
        auto r = submit(VIRTIO_BLK_T_OUT, 0, 512, 0x11);
        driver_->kick(0);
        ASSERT_TRUE(wait_used(1)) << backend_log();
        EXPECT_EQ(driver_->get<uint8_t>(r.status), VIRTIO_BLK_S_OK);
    }
};

TEST_F(BlkbackMalformedTest, EachEndsOnlyItsOwnConnection) {
    connect();
    using vhost_user::Request;
    struct Case {
        const char* what;
        uint32_t request;
        std::vector<uint8_t> payload;
        bool with_fd;
    };
    vhost_user::MemoryTable table{};
    table.count = 1;
    table.regions[0] = {0, 1 << 20, 0x10000, 0};
    std::vector<uint8_t> table_bytes(reinterpret_cast<uint8_t*>(&table),
                                     reinterpret_cast<uint8_t*>(&table) + 8 + sizeof(vhost_user::MemoryRegion));
    vhost_user::VringAddress outside{0, 0, 0x10000, 0x7fff0000, 0x10000, 0};
    std::vector<Case> cases = {
        {"unknown request", 999, {}, false},
        {"memory table without its fd", static_cast<uint32_t>(Request::SetMemTable), table_bytes, false},
        {"memory table with a file that is not sealed", static_cast<uint32_t>(Request::SetMemTable), table_bytes, true},
        {"features never offered", static_cast<uint32_t>(Request::SetFeatures), {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, false},
        {"short payload", static_cast<uint32_t>(Request::SetVringNum), {1, 2, 3}, false},
        {"queue that does not exist", static_cast<uint32_t>(Request::SetVringNum), {9, 0, 0, 0, 0, 1, 0, 0}, false},
        {"kick without fd", static_cast<uint32_t>(Request::SetVringKick), {0, 0, 0, 0, 0, 0, 0, 0}, false},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        auto channel = raw();
        int file = ::open(image_.c_str(), O_RDONLY | O_CLOEXEC);
        int fds[] = {file};
        ASSERT_TRUE(channel.send(c.request, 0, c.payload, c.with_fd ? std::span<const int>(fds) : std::span<const int>()));
        ::close(file);
        EXPECT_TRUE(closed(channel));
        still_serves_d0();
    }
    // A ring outside the shared memory, after a valid set-up.
    {
        auto channel = raw();
        auto memory = GuestMemory::create(std::vector<std::pair<uint64_t, uint64_t>>{{0, 1 << 20}});
        ASSERT_TRUE(memory);
        const auto& region = memory->regions()[0];
        vhost_user::MemoryTable good{};
        good.count = 1;
        good.regions[0] = {0, region.host.size(), 0x10000, region.file_offset};
        int fds[] = {region.file};
        uint64_t features = virtio::kFeatureVersion1 | vhost_user::kFeatureProtocolFeatures;
        ASSERT_TRUE(channel.send_object(static_cast<uint32_t>(Request::SetFeatures), 0, features));
        ASSERT_TRUE(channel.send(static_cast<uint32_t>(Request::SetMemTable), 0,
                                 {reinterpret_cast<const uint8_t*>(&good), 8 + sizeof(vhost_user::MemoryRegion)}, fds));
        ASSERT_TRUE(channel.send_object(static_cast<uint32_t>(Request::SetVringNum), 0, vhost_user::VringState{0, 256}));
        ASSERT_TRUE(channel.send_object(static_cast<uint32_t>(Request::SetVringAddr), 0, outside));
        int kick = ::eventfd(0, EFD_CLOEXEC);
        int kick_fds[] = {kick};
        ASSERT_TRUE(channel.send_object(static_cast<uint32_t>(Request::SetVringKick), 0, uint64_t{0}, kick_fds));
        ASSERT_TRUE(channel.send_object(static_cast<uint32_t>(Request::SetVringEnable), 0, vhost_user::VringState{0, 1}));
        ::close(kick);
        EXPECT_TRUE(closed(channel));
        still_serves_d0();
    }
    // One log line each, naming the problem.
    auto log = backend_log();
    EXPECT_NE(log.find("request 999 is not supported"), std::string::npos) << log;
    EXPECT_NE(log.find("not sealed"), std::string::npos) << log;
    EXPECT_NE(log.find("is not in the shared memory"), std::string::npos) << log;
}


// Sharing one host disk. Two guests on one back-end, their images on one
// host disk that is capped at kDiskIops (standing for a disk that does no
// more): guest A keeps 64 reads in flight, guest B 16. The scheduler divides
// the disk by weight, gives an idle guest's share to the other, and holds
// a guest's own cap, with its burst once; the policy is changed while
// running through the control socket.
class BlkbackPolicyTest : public BlkbackTest {
protected:
    static constexpr double kDiskIops = 4000;

    void SetUp() override {
        BlkbackTest::SetUp();
        stop_backend();
        extra_args_ = {"--host-disk", dir_.string() + ",iops=" + std::to_string(int(kDiskIops))};
        start_backend();
    }

    struct Guest {
        std::unique_ptr<vhost_user::VhostUserDevice> device;
        std::unique_ptr<FakeDriver> driver;
        unsigned depth = 0;
        uint64_t completed = 0, failed = 0;
        std::vector<uint64_t> buffers;  // per slot: header, data, status
        std::vector<int> slot_of;       // by head
        std::mt19937_64 random{42};
    };
    std::unique_ptr<Guest> guest(const char* disk, unsigned depth) {
        auto g = std::make_unique<Guest>();
        auto device = vhost_user::VhostUserDevice::connect((dir_ / (std::string(disk) + ".sock")).string(),
                                                           VIRTIO_ID_BLOCK, sizeof(virtio_blk_config), 1, 256);
        EXPECT_TRUE(device) << device.error().message;
        if (!device) return nullptr;
        g->device = std::move(*device);
        g->driver = std::make_unique<FakeDriver>(*g->device);
        EXPECT_TRUE(g->driver->start());
        g->depth = depth;
        g->slot_of.assign(256, -1);
        for (unsigned i = 0; i < depth; ++i) {
            g->buffers.push_back(g->driver->alloc(16));
            g->buffers.push_back(g->driver->alloc(4096, 4096));
            g->buffers.push_back(g->driver->alloc(1));
        }
        return g;
    }
    // A 4 KiB read at a random place, in the slot's buffers.
    static void issue(Guest& g, unsigned slot) {
        uint64_t header = g.buffers[3 * slot], data = g.buffers[3 * slot + 1], status = g.buffers[3 * slot + 2];
        struct {
            uint32_t type, reserved;
            uint64_t sector;
        } request{VIRTIO_BLK_T_IN, 0, (g.random() % (kDiskSize / 4096)) * 8};
        g.driver->put(header, request);
        g.driver->put<uint8_t>(status, 0xff);
        auto head = g.driver->add_chain(0, {Buffer{header, 16, false}, Buffer{data, 4096, true}, Buffer{status, 1, true}});
        ASSERT_TRUE(head);
        g.slot_of[*head] = static_cast<int>(slot);
    }
    // Keeps each guest's reads in flight for `time` (a guest whose depth
    // is 0 is idle); returns what each completed.
    std::vector<uint64_t> run(const std::vector<Guest*>& guests, std::chrono::milliseconds time) {
        std::vector<uint64_t> before;
        for (auto* g : guests) {
            before.push_back(g->completed);
            if (g->completed == 0 && g->failed == 0)
                for (unsigned slot = 0; slot < g->depth; ++slot) issue(*g, slot);
            g->driver->kick(0);
        }
        auto end = std::chrono::steady_clock::now() + time;
        while (std::chrono::steady_clock::now() < end) {
            bool any = false;
            for (auto* g : guests) {
                bool used = false;
                while (auto element = g->driver->next_used(0)) {
                    int slot = element->id < 256 ? g->slot_of[element->id] : -1;
                    if (slot < 0) continue;
                    uint8_t status = g->driver->get<uint8_t>(g->buffers[3 * slot + 2]);
                    ++(status == VIRTIO_BLK_S_OK ? g->completed : g->failed);
                    issue(*g, static_cast<unsigned>(slot));
                    used = true;
                }
                if (used) g->driver->kick(0);
                any = any || used;
            }
            if (!any) std::this_thread::sleep_for(50us);
        }
        std::vector<uint64_t> done;
        for (size_t i = 0; i < guests.size(); ++i) done.push_back(guests[i]->completed - before[i]);
        return done;
    }
    // The host disk the images are on, as the control socket names it.
    std::string disk_id() const {
        struct stat st{};
        ::stat(image_.c_str(), &st);
        return std::to_string(major(st.st_dev)) + ":" + std::to_string(minor(st.st_dev));
    }
    std::string control(const std::string& text) { return request("control", text); }
};

TEST_F(BlkbackPolicyTest, SharesTheHostDiskByWeightAndHoldsCaps) {
    auto a = guest("d0", 64), b = guest("d1", 16);
    ASSERT_TRUE(a && b);
    // Alone, A has the whole disk: the scheduler is work-conserving.
    run({a.get()}, 500ms);
    auto alone = run({a.get()}, 2000ms)[0] / 2.0;
    EXPECT_GT(alone, 0.90 * kDiskIops) << backend_log();
    EXPECT_LT(alone, 1.05 * kDiskIops);

    // Equal weights: B gets at least 45 % though A keeps 4 times as many
    // requests waiting.
    run({a.get(), b.get()}, 500ms);
    auto equal = run({a.get(), b.get()}, 3000ms);
    double b_share = double(equal[1]) / double(equal[0] + equal[1]);
    EXPECT_GE(b_share, 0.45) << equal[0] << " and " << equal[1];
    std::printf("[ figures  ] alone: A %.0f/s; equal weights: A %lu, B %lu (B %.1f %%)\n", alone, equal[0], equal[1],
                100 * b_share);

    // Weights 1:3, set while running: A's share within 10 % of 25 %.
    EXPECT_EQ(control(R"({"execute":"set-disk","disk":"d1","weight":300})"), R"({"return":{}})");
    run({a.get(), b.get()}, 500ms);
    auto weighted = run({a.get(), b.get()}, 3000ms);
    double a_share = double(weighted[0]) / double(weighted[0] + weighted[1]);
    EXPECT_NEAR(a_share, 0.25, 0.025) << weighted[0] << " and " << weighted[1];
    std::printf("[ figures  ] weights 1:3: A %lu, B %lu (A %.1f %%)\n", weighted[0], weighted[1], 100 * a_share);

    // A cap of 1000 requests/s with a burst of 500, A alone and the disk
    // uncapped: the burst goes at once, then the cap holds within 5 % for
    // 30 s, and the burst is not given again while A stays at its cap.
    EXPECT_EQ(control(R"({"execute":"set-host-disk","host_disk":")" + disk_id() + R"(","iops":0})"), R"({"return":{}})");
    run({a.get()}, 500ms);  // drains what the weights held back
    EXPECT_EQ(control(R"({"execute":"set-disk","disk":"d0","iops":1000,"iops_burst":500})"), R"({"return":{}})");
    auto burst = run({a.get()}, 200ms)[0];
    EXPECT_GE(burst, 500u) << "the burst is honoured";
    EXPECT_LT(burst, 500u + 200u + 100u) << "and only the burst (and the 200 ms at the cap)";
    uint64_t total = 0, worst_second = 0;
    for (int second = 0; second < 30; ++second) {
        auto n = run({a.get()}, 1000ms)[0];
        total += n;
        worst_second = std::max(worst_second, n);
    }
    EXPECT_NEAR(double(total) / 30, 1000, 50) << "a cap of 1000 requests/s holds within 5 % over 30 s";
    EXPECT_LE(worst_second, 1060u) << "no second burst";
    std::printf("[ figures  ] cap 1000/s, burst 500: %lu in the first 200 ms, %.1f/s over 30 s, at most %lu in a second\n",
                burst, double(total) / 30, worst_second);
    EXPECT_EQ(a->failed + b->failed, 0u);

    // The back-end's own counters agree.
    auto query = control(R"({"execute":"query"})");
    EXPECT_NE(query.find(R"("iops":1000)"), std::string::npos) << query;
    EXPECT_NE(query.find(R"("weight":300)"), std::string::npos) << query;
    // (It counts requests started: A's completed ones and some in flight.)
    auto at = query.find(R"("reads":)");
    ASSERT_NE(at, std::string::npos) << query;
    uint64_t reads = std::stoull(query.substr(at + 8));
    EXPECT_GE(reads, a->completed) << query;
    EXPECT_LE(reads, a->completed + a->depth) << query;
    // B sent nothing for the last 30 s and more: its ring sat empty that
    // long, as its ring_empty_us says (the spell still going on included).
    auto b_empty = query.find(R"("ring_empty_us":)", query.find(R"("name":"d1")"));
    ASSERT_NE(b_empty, std::string::npos) << query;
    EXPECT_GE(std::stoull(query.substr(b_empty + 16)), 30'000'000u) << query;
}

// The control socket answers malformed requests with one error line and
// goes on serving.
TEST_F(BlkbackPolicyTest, TheControlSocketRefusesMalformedRequests) {
    struct Case {
        const char* request;
        const char* error;
    } cases[] = {
        {"{", "not JSON"},
        {"[1,2]", "must be a JSON object"},
        {R"({"execute":5})", "the request has no"},
        {R"({"execute":"reboot"})", "unknown command 'reboot'"},
        {R"({"execute":"set-disk","disk":"nope","iops":5})", "no disk is named 'nope'"},
        {R"({"execute":"set-disk","disk":"d0","iops":-5})", "'iops' must be a number of at least 0"},
        {R"({"execute":"set-disk","disk":"d0","weight":0})", "weight must be 1 to 10000"},
        {R"({"execute":"set-disk","disk":"d0","colour":"red"})", "unknown key 'colour'"},
        {R"({"execute":"set-disk","iops":5})", "set-disk needs"},
        {R"({"execute":"set-host-disk","host_disk":"0:0","depth":4})", "no host disk is '0:0'"},
        {R"({"execute":"query","x":1})", "query takes no arguments"},
    };
    for (const auto& c : cases) {
        auto answer = control(c.request);
        EXPECT_TRUE(answer.starts_with(R"({"error":")")) << c.request << " -> " << answer;
        EXPECT_NE(answer.find(c.error), std::string::npos) << c.request << " -> " << answer;
    }
    EXPECT_TRUE(control(R"({"execute":"query"})").starts_with(R"({"return":{"disks":[)"));

    // What was set outlives the worker: a new one has it.
    EXPECT_EQ(control(R"({"execute":"set-disk","disk":"d0","iops":777,"weight":9})"), R"({"return":{}})");
    pid_t worker = worker_pid();
    ASSERT_GT(worker, 0);
    ::kill(worker, SIGKILL);
    for (int i = 0; i < 200 && (worker_pid() == worker || worker_pid() <= 0); ++i) std::this_thread::sleep_for(10ms);
    auto query = control(R"({"execute":"query"})");
    EXPECT_NE(query.find(R"("iops":777)"), std::string::npos) << query;
    EXPECT_NE(query.find(R"("weight":9)"), std::string::npos) << query;
}

}  // namespace
}  // namespace hospes
