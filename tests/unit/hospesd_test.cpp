// hospesd as a process, with the real hospes as its monitor program, in a
// state directory and socket of the test's own. Domains that boot need
// KVM and are tested in the lab (lab.toolstack); here: the API's answers
// to good and bad requests, a create whose monitor cannot start (nothing
// left behind), and a restart that finds a domain whose monitor ended
// while no hospesd ran (its on_poweroff acted on), with top, dmesg and the
// Prometheus metrics showing it.
#include <gtest/gtest.h>

#include <httplib.h>
#include <signal.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "toolstack/domain_groups.hpp"
#include "toolstack/daemon.hpp"
#include "toolstack/domain_json.hpp"
#include "toolstack/metrics.hpp"
#include "toolstack/monitor_process.hpp"

namespace hospes::toolstack {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class HospesdTest : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() / ("hospesd-test-" + std::to_string(::getpid()));
        fs::remove_all(dir_);
        fs::create_directories(dir_ / "state");
        socket_ = (dir_ / "hospesd.sock").string();
    }
    void TearDown() override {
        stop();
        // The back-end hospesd started outlives it, as the monitors do.
        if (pid_t backend = blkback_pid(); backend > 0) {
            ::kill(backend, SIGTERM);
            for (int i = 0; i < 500 && ::kill(backend, 0) == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        fs::remove_all(dir_);
    }
    // The hospes-blkback process its state file names (0: none).
    pid_t blkback_pid() const {
        std::ifstream in(dir_ / "state" / "blkback" / "hospes-blkback.json");
        auto state = json::parse(in, nullptr, false);
        return state.is_object() ? state.value("pid", 0) : 0;
    }
    void start(const std::string& metrics = "") {
        fs::remove(socket_);  // an earlier hospesd's
        pid_ = ::fork();
        if (pid_ == 0) {
            std::string log = (dir_ / "hospesd.log").string();
            FILE* out = std::freopen(log.c_str(), "a", stderr);
            (void)out;
            std::string state = (dir_ / "state").string();
            std::vector<const char*> args = {"hospesd",  "--socket",     socket_.c_str(), "--state-dir", state.c_str(),
                                             "--monitor", HOSPES_BINARY, "--no-cgroups"};
            if (!metrics.empty()) {
                args.push_back("--metrics");
                args.push_back(metrics.c_str());
            }
            args.push_back(nullptr);
            ::execv(HOSPESD_BINARY, const_cast<char* const*>(args.data()));
            ::_exit(127);
        }
        for (int i = 0; i < 200 && !fs::exists(socket_); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        ASSERT_TRUE(fs::exists(socket_)) << "hospesd did not open its socket";
    }
    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGTERM);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
    }
    Result<json> request(const json& r) { return json_request(socket_, r); }

    fs::path dir_;
    std::string socket_;
    pid_t pid_ = -1;
};

TEST_F(HospesdTest, ListsDomainZeroAndAnswersBadRequestsWithOneError) {
    start();
    auto rows = request({{"execute", "list"}});
    ASSERT_TRUE(rows) << rows.error().message;
    ASSERT_EQ(rows->size(), 1u);
    EXPECT_EQ((*rows)[0]["name"], "Domain-0");
    EXPECT_EQ((*rows)[0]["state"], "r-----");
    EXPECT_GT((*rows)[0]["memory_mib"].get<uint64_t>(), 0u);
    auto info = request({{"execute", "info"}});
    ASSERT_TRUE(info) << info.error().message;
    EXPECT_GT((*info)["nr_cpus"].get<int>(), 0);
    EXPECT_GT((*info)["total_memory"].get<uint64_t>(), (*info)["free_memory"].get<uint64_t>() / 2);
    struct Case {
        const char* request;
        const char* error;
    };
    for (const auto& [text, expected] :
         {Case{"{\"execute\":\"explode\",\"domain\":\"x\"}", "unknown command 'explode'"},
          Case{"{\"execute\":\"pause\",\"domain\":\"nosuch\"}", "domain 'nosuch' does not exist"},
          Case{"{\"execute\":\"destroy\"}", "no \"domain\" given"},
          Case{"{\"execute\":\"create\",\"domain\":{\"name\":\"a b\"}}", "domain name 'a b'"},
          Case{"{\"execute\":\"create\",\"domain\":{\"name\":\"a\",\"memory_mib\":\"lots\"}}",
               "\"memory_mib\" must be a whole number"},
          Case{"{\"execute\":\"create\",\"domain\":{\"name\":\"a\"},\"paused\":3}", "\"paused\" must be true or false"},
          Case{"[1,2]", "must be a JSON object"}}) {
        auto answer = json_request(socket_, json::parse(text));
        ASSERT_FALSE(answer) << text;
        EXPECT_NE(answer.error().message.find(expected), std::string::npos) << answer.error().message;
        EXPECT_EQ(answer.error().message.find('\n'), std::string::npos);
    }
}

TEST_F(HospesdTest, ACreateWhoseMonitorCannotStartSaysWhyAndLeavesNothing) {
    start();
    DomainConfig d;
    d.name = "web1";
    d.kernel = "/nonexistent/vmlinuz";
    auto created = request({{"execute", "create"}, {"domain", domain_to_json(d)}});
    ASSERT_FALSE(created);
    EXPECT_NE(created.error().message.find("the monitor ended at once"), std::string::npos)
        << created.error().message;
    EXPECT_NE(created.error().message.find("/nonexistent/vmlinuz"), std::string::npos) << created.error().message;
    EXPECT_TRUE(fs::is_empty(dir_ / "state" / "domains"));
    auto rows = request({{"execute", "list"}});
    ASSERT_TRUE(rows);
    EXPECT_EQ(rows->size(), 1u);
}

TEST_F(HospesdTest, ADomainWhoseMonitorEndedWhileNoHospesdRanIsActedOn) {
    // A monitor process that has ended: a child that exits at once.
    pid_t gone = ::fork();
    if (gone == 0) ::_exit(0);
    ::waitpid(gone, nullptr, 0);
    auto domain_dir = dir_ / "state" / "domains" / "7";
    fs::create_directories(domain_dir);
    DomainConfig d;
    d.name = "kept";
    d.memory_mib = 64;
    d.maxmem_mib = 96;
    d.on_poweroff = DomainAction::Preserve;
    std::ofstream(domain_dir / "domain.json")
        << json{{"id", 7}, {"config", domain_to_json(d)}, {"pid", gone}, {"start_ticks", 1}, {"started_at", 1}}.dump();
    std::ofstream(domain_dir / "exit.json") << R"({"status":0,"reason":"poweroff"})";
    auto other = dir_ / "state" / "domains" / "8";
    fs::create_directories(other);
    std::ofstream(other / "domain.json") << "{ not json";
    // A free port for the metrics: the kernel picks one, and it is let go.
    int probe = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in any{};
    any.sin_family = AF_INET;
    any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(any);
    ASSERT_EQ(::bind(probe, reinterpret_cast<sockaddr*>(&any), sizeof(any)), 0);
    ASSERT_EQ(::getsockname(probe, reinterpret_cast<sockaddr*>(&any), &length), 0);
    int port = ntohs(any.sin_port);
    ::close(probe);
    start("127.0.0.1:" + std::to_string(port));
    auto rows = request({{"execute", "list"}});
    ASSERT_TRUE(rows) << rows.error().message;
    ASSERT_EQ(rows->size(), 2u);
    // top: list's rows with maxmem and devices (none: nothing runs).
    auto top = request({{"execute", "top"}});
    ASSERT_TRUE(top) << top.error().message;
    ASSERT_EQ(top->size(), 2u);
    EXPECT_EQ((*top)[1]["maxmem_mib"], 96);
    EXPECT_TRUE((*top)[1]["devices"].empty());
    // dmesg: what hospesd logged, with -c clearing it.
    auto kept = request({{"execute", "dmesg"}});
    ASSERT_TRUE(kept) << kept.error().message;
    EXPECT_NE((*kept)["lines"].dump().find("its monitor ended while hospesd was away"), std::string::npos)
        << kept->dump();
    ASSERT_TRUE(request({{"execute", "dmesg"}, {"clear", true}}));
    kept = request({{"execute", "dmesg"}});
    ASSERT_TRUE(kept);
    EXPECT_TRUE((*kept)["lines"].empty()) << kept->dump();
    EXPECT_FALSE(request({{"execute", "dmesg"}, {"clear", "yes"}}));
    // Metrics: the preserved domain, not running.
    httplib::Client http("127.0.0.1", port);
    auto scraped = http.Get("/metrics");
    ASSERT_TRUE(scraped) << "no answer from the metrics server";
    EXPECT_EQ(scraped->status, 200);
    EXPECT_NE(scraped->body.find("hospes_domains 1\n"), std::string::npos) << scraped->body;
    EXPECT_NE(scraped->body.find("hospes_domain_running{domain=\"kept\",id=\"7\"} 0\n"), std::string::npos);
    EXPECT_NE(scraped->body.find("hospes_domain_memory_bytes{domain=\"kept\",id=\"7\"} 67108864\n"),
              std::string::npos);
    EXPECT_NE(scraped->body.find("# TYPE hospes_domain_cpu_seconds_total counter"), std::string::npos);
    auto missing = http.Get("/nothing");
    ASSERT_TRUE(missing);
    EXPECT_EQ(missing->status, 404);
    EXPECT_EQ((*rows)[1]["name"], "kept");
    EXPECT_EQ((*rows)[1]["id"], 7);
    EXPECT_EQ((*rows)[1]["state"], "---s--");
    EXPECT_EQ((*rows)[1]["status"], "shutdown");
    auto paused = request({{"execute", "pause"}, {"domain", "kept"}});
    ASSERT_FALSE(paused);
    EXPECT_NE(paused.error().message.find("is not running"), std::string::npos);
    ASSERT_TRUE(request({{"execute", "rename"}, {"domain", 7}, {"name", "kept2"}}));
    ASSERT_TRUE(request({{"execute", "destroy"}, {"domain", "kept2"}}));
    EXPECT_FALSE(fs::exists(domain_dir));
    EXPECT_TRUE(fs::exists(other / "domain.json")) << "a state file hospesd cannot read is left alone";
}

// hospesd runs one hospes-blkback for every domain's disks: a domain's
// disks are added to it before the monitor starts and removed when the
// monitor ends (or never starts); a new hospesd adopts the running
// back-end; one that dies is started again and counted.
TEST_F(HospesdTest, RunsTheBlockBackEndAndStartsItAgainWhenItEnds) {
    start();
    auto backends = request({{"execute", "backends"}});
    ASSERT_TRUE(backends) << backends.error().message;
    ASSERT_EQ(backends->size(), 1u);
    EXPECT_EQ((*backends)[0]["name"], "hospes-blkback");
    EXPECT_EQ((*backends)[0]["up"], true) << backends->dump();
    EXPECT_EQ((*backends)[0]["restarts"], 0);
    pid_t first = (*backends)[0]["pid"].get<pid_t>();
    EXPECT_EQ(first, blkback_pid());
    auto blkback = [&](const json& r) { return json_request((dir_ / "state" / "blkback" / "control").string(), r); };

    // A disk that cannot be opened: one error naming it, nothing started.
    DomainConfig d;
    d.name = "web1";
    d.kernel = "/nonexistent/vmlinuz";
    DomainDisk disk;
    disk.target = (dir_ / "missing.img").string();
    disk.vdev = "xvda";
    disk.guest_device = "vda";
    d.disks.push_back(disk);
    auto created = request({{"execute", "create"}, {"domain", domain_to_json(d)}});
    ASSERT_FALSE(created);
    EXPECT_NE(created.error().message.find("disk xvda"), std::string::npos) << created.error().message;
    EXPECT_NE(created.error().message.find("missing.img"), std::string::npos) << created.error().message;
    // A disk the back-end opens, but a monitor that cannot start: the disk
    // is given back (no longer served, its lock let go).
    std::ofstream(dir_ / "web1.img").put(0);
    fs::resize_file(dir_ / "web1.img", 1 << 20);
    d.disks[0].target = (dir_ / "web1.img").string();
    created = request({{"execute", "create"}, {"domain", domain_to_json(d)}});
    ASSERT_FALSE(created);
    EXPECT_NE(created.error().message.find("the monitor ended at once"), std::string::npos) << created.error().message;
    auto served = blkback({{"execute", "query"}});
    ASSERT_TRUE(served) << served.error().message;
    EXPECT_TRUE((*served)["disks"].empty()) << served->dump();
    EXPECT_TRUE(fs::is_empty(dir_ / "state" / "domains"));

    // A new hospesd adopts the back-end that runs.
    stop();
    start();
    backends = request({{"execute", "backends"}});
    ASSERT_TRUE(backends) << backends.error().message;
    EXPECT_EQ((*backends)[0]["pid"], first);
    EXPECT_EQ((*backends)[0]["restarts"], 0);

    // Killed, it is started again, and its worker's restarts count too.
    ::kill(first, SIGKILL);
    for (int i = 0; i < 500 && (blkback_pid() == first || blkback_pid() == 0); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    backends = request({{"execute", "backends"}});
    ASSERT_TRUE(backends) << backends.error().message;
    EXPECT_NE((*backends)[0]["pid"], first);
    EXPECT_EQ((*backends)[0]["up"], true);
    EXPECT_EQ((*backends)[0]["restarts"], 1);
    EXPECT_EQ((*backends)[0]["worker_restarts"], 0);
    std::string text = prometheus_text(json::array(), *backends);
    EXPECT_NE(text.find("hospes_backend_restarts_total{backend=\"hospes-blkback\",level=\"process\"} 1\n"),
              std::string::npos) << text;
    EXPECT_NE(text.find("hospes_backend_up{backend=\"hospes-blkback\"} 1\n"), std::string::npos) << text;
}

// The host's own cgroups (v1 on these machines; v2 is tested in
// lab.toolstack): two busy processes on one CPU with weights 256 and 512,
// then one alone with a cap of 30 %.
TEST(Metrics, ARunningDomainsCountersInPrometheusText) {
    json disk = {{"vdev", "xvda"}}, vif = {{"vifname", ""}};
    json rows = json::array(
        {{{"id", 0}, {"name", "Domain-0"}, {"cpu_seconds", 9.0}, {"memory_mib", 1024}, {"vcpus", 2}},
         {{"id", 3},
          {"name", "web1"},
          {"pid", 1234},
          {"cpu_seconds", 1.5},
          {"memory_mib", 96},
          {"maxmem_mib", 160},
          {"vcpus", 2},
          {"restarts", 1},
          {"config", {{"disks", {disk}}, {"vifs", {vif}}}},
          {"devices",
           {{{"type", "block"}, {"counters", {{"read_requests", 10}, {"read_bytes", 40960}, {"write_requests", 2}}}},
            {{"type", "network"}, {"counters", {{"tx_packets", 5}, {"tx_bytes", 700}, {"rx_dropped", 1}}}}}}}});
    std::string text = prometheus_text(rows);
    for (const char* line :
         {"hospes_domains 1\n", "hospes_domain_running{domain=\"web1\",id=\"3\"} 1\n",
          "hospes_domain_cpu_seconds_total{domain=\"web1\",id=\"3\"} 1.5\n",
          "hospes_domain_memory_bytes{domain=\"web1\",id=\"3\"} 100663296\n",
          "hospes_domain_max_memory_bytes{domain=\"web1\",id=\"3\"} 167772160\n",
          "hospes_domain_restarts_total{domain=\"web1\",id=\"3\"} 1\n",
          "hospes_block_requests_total{domain=\"web1\",id=\"3\",device=\"xvda\",op=\"read\"} 10\n",
          "hospes_block_bytes_total{domain=\"web1\",id=\"3\",device=\"xvda\",op=\"read\"} 40960\n",
          "hospes_block_requests_total{domain=\"web1\",id=\"3\",device=\"xvda\",op=\"write\"} 2\n",
          "hospes_network_bytes_total{domain=\"web1\",id=\"3\",device=\"vif3.0\",direction=\"tx\"} 700\n",
          "hospes_network_dropped_total{domain=\"web1\",id=\"3\",device=\"vif3.0\",direction=\"rx\"} 1\n",
          "# TYPE hospes_block_bytes_total counter\n"})
        EXPECT_NE(text.find(line), std::string::npos) << line << " not in:\n" << text;
    EXPECT_EQ(text.find("Domain-0"), std::string::npos) << "the host's row is not a domain's metric";
}

TEST(DomainGroups, WeightsShareACpuOneToTwoAndACapHolds) {
    auto hierarchy = DomainGroups::find_cpu_hierarchy();
    if (!hierarchy || hierarchy->v2 || ::geteuid() != 0) GTEST_SKIP() << "needs root and a cgroup v1 cpu hierarchy";
    std::string parent = hierarchy->path + "/hospes-unit-" + std::to_string(::getpid());
    ASSERT_TRUE(fs::create_directories(parent));
    auto groups = DomainGroups::at(parent, false);
    ASSERT_TRUE(groups) << groups.error().message;
    auto busy = [&](uint32_t id) {
        auto procs = groups->create(id);
        EXPECT_TRUE(procs) << procs.error().message;
        pid_t pid = ::fork();
        if (pid == 0) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(0, &one);
            ::sched_setaffinity(0, sizeof(one), &one);
            std::ofstream(*procs) << "0\n";
            for (uint64_t i = 0;; ++i) asm volatile("" : : "r"(i));  // spin
        }
        return pid;
    };
    pid_t a = busy(1), b = busy(2);
    for (auto [id, weight] : {std::pair{1u, 256u}, {2u, 512u}}) {
        auto set = groups->set(id, weight, 0);
        ASSERT_TRUE(set) << set.error().message;
    }
    auto ticks = [](pid_t pid) { return process_stat(pid).value_or(ProcessStat{}).cpu_ticks; };
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    uint64_t a0 = ticks(a), b0 = ticks(b);
    std::this_thread::sleep_for(std::chrono::seconds(4));
    double share_a = static_cast<double>(ticks(a) - a0), share_b = static_cast<double>(ticks(b) - b0);
    ::kill(b, SIGKILL);
    ::waitpid(b, nullptr, 0);
    EXPECT_NEAR(share_b / share_a, 2.0, 0.2) << "ticks " << share_a << " and " << share_b;
    std::printf("weights 256:512 on one CPU: CPU time 1:%.2f\n", share_b / share_a);
    ASSERT_TRUE(groups->set(1, 256, 30));
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    a0 = ticks(a);
    auto t0 = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(std::chrono::seconds(4));
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double percent = static_cast<double>(ticks(a) - a0) / static_cast<double>(::sysconf(_SC_CLK_TCK)) / seconds * 100;
    ::kill(a, SIGKILL);
    ::waitpid(a, nullptr, 0);
    EXPECT_NEAR(percent, 30.0, 3.0);
    std::printf("cap 30: %.1f %% of a CPU\n", percent);
    groups->remove(1);
    groups->remove(2);
    ::rmdir(groups->root().c_str());
    ::rmdir(parent.c_str());
}

TEST(StateLetters, AreXensSixLetters) {
    EXPECT_EQ(state_letters(true, false, ""), "r-----");
    EXPECT_EQ(state_letters(false, false, ""), "-b----");
    EXPECT_EQ(state_letters(false, true, ""), "--p---");
    EXPECT_EQ(state_letters(false, false, "poweroff"), "---s--");
    EXPECT_EQ(state_letters(false, false, "reboot"), "---sr-");
    EXPECT_EQ(state_letters(false, false, "crash"), "---sc-");
}

TEST(DomainJson, RoundTripsAndNamesTheFirstWrongField) {
    DomainConfig d;
    d.name = "web1";
    d.memory_mib = 512;
    d.maxmem_mib = 1024;
    d.maxvcpus = 2;
    d.vcpus = 2;
    d.cpus = {"0-1"};
    d.on_crash = DomainAction::RenameRestart;
    DomainDisk disk;
    disk.target = "/srv/web1.img";
    disk.vdev = "xvda";
    disk.guest_device = "vda";
    disk.read_only = true;
    d.disks.push_back(disk);
    DomainVif vif;
    vif.mac = std::array<uint8_t, 6>{0x00, 0x16, 0x3e, 1, 2, 3};
    vif.bridge = "xenbr0";
    d.vifs.push_back(vif);
    auto back = domain_from_json(domain_to_json(d));
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(domain_to_json(*back), domain_to_json(d));
    auto wrong = [](json j) {
        auto r = domain_from_json(j);
        return r ? std::string("accepted") : r.error().message;
    };
    EXPECT_EQ(wrong(json::array()), "domain: expected an object");
    EXPECT_EQ(wrong({{"memory_mib", 64}}), "domain: \"name\" is missing");
    EXPECT_EQ(wrong({{"name", "a"}, {"vcpus", -1}}), "domain: \"vcpus\" must be a whole number in range");
    EXPECT_EQ(wrong({{"name", "a"}, {"on_crash", "explode"}}),
              "domain: \"on_crash\" must be destroy, restart, rename-restart, preserve, coredump-destroy or "
              "coredump-restart");
    EXPECT_EQ(wrong({{"name", "a"}, {"disks", {{{"target", 5}}}}}), "disk 0: \"target\" must be a string");
    EXPECT_NE(wrong({{"name", "a"}, {"vifs", {{{"mac", "zz"}}}}}).find("vif 0:"), std::string::npos);
    EXPECT_EQ(wrong({{"name", "a"}, {"memory_mib", 2}}), "domain: \"memory_mib\" must be at least 4");
    // What travels on to a monitor's or a back-end's command line or log is
    // checked whole: no control characters, no commas in paths, real
    // addresses and drive names, each drive once.
    EXPECT_EQ(wrong({{"name", "a"}, {"cmdline", "console=ttyS0\nroot=/dev/vda"}}),
              "domain: cmdline 'console=ttyS0\\nroot=/dev/vda': control characters (NUL, newline) are not allowed");
    EXPECT_NE(wrong({{"name", "a"}, {"disks", {{{"target", "/a,b.img"}, {"vdev", "xvda"}}}}}).find("a path with a comma"),
              std::string::npos);
    EXPECT_NE(wrong({{"name", "a"}, {"disks", {{{"target", "/a.img"}, {"vdev", "xvda"}}, {{"target", "/b.img"}, {"vdev", "xvda"}}}}})
                  .find("a drive named twice"),
              std::string::npos);
    EXPECT_NE(wrong({{"name", "a"}, {"vifs", {{{"ips", {"10.0.0.1;rm"}}}}}}).find("is not an IPv4 or IPv6 address"),
              std::string::npos);
    EXPECT_NE(wrong({{"name", "a"}, {"vcpus", 4}, {"maxvcpus", 2}}).find("maxvcpus 2 is less than vcpus 4"),
              std::string::npos);
}

}  // namespace
}  // namespace hospes::toolstack
