// The jail (sandbox/jail.hpp), the seccomp allowlists (sandbox/filter.hpp),
// the jailer of `hospes run --jail` (vmm/jailer.hpp) and the capped output
// (common/capped_writer.hpp), each in a child process of the test: what a
// jailed process can still reach, what a forbidden system call does, and
// what the jailer reports. The jail needs root; without it those tests
// are skipped.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "common/capped_writer.hpp"
#include "common/unique_fd.hpp"
#include "sandbox/filter.hpp"
#include "sandbox/jail.hpp"
#include "sandbox/network_namespaces.hpp"
#include "vmm/filters.hpp"
#include "vmm/jailer.hpp"

namespace hospes {
namespace {

namespace fs = std::filesystem;
constexpr uid_t kUid = 0x70000000 + 0xfffff;  // in the reserved range, used by nothing else here

// Runs `body` in a child; its exit status (or 128 + the signal that killed it).
int in_child(const std::function<int()>& body) {
    pid_t pid = ::fork();
    if (pid == 0) {
        // Never back into the test runner, whatever happens in the child.
        int status = 99;
        try {
            status = body();
        } catch (...) {
        }
        ::_exit(status);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

std::string read_file(const fs::path& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

class JailTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (::geteuid() != 0) GTEST_SKIP() << "needs root (namespaces, a change of user)";
        dir_ = fs::temp_directory_path() / ("hospes-jail-test-" + std::to_string(::getpid()));
        fs::create_directories(dir_);
    }
    void TearDown() override {
        if (!dir_.empty()) fs::remove_all(dir_);
    }
    fs::path dir_;
};

// Each check in the jailed child is one exit code, so a failure names it.
TEST_F(JailTest, AJailedProcessReachesNothingOfTheHost) {
    // A unix socket of the host, the one file bound into the jail.
    auto socket_path = dir_ / "listener.sock";
    UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strcpy(address.sun_path, socket_path.c_str());
    ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    ASSERT_EQ(::listen(listener.get(), 4), 0);
    ASSERT_EQ(::chown(socket_path.c_str(), kUid, kUid), 0);
    int status = in_child([&] {
        sandbox::JailOptions options;
        options.uid = options.gid = kUid;
        options.limits = {32, 8, 1 << 20};
        options.binds = {{socket_path.string(), "own.sock"}};
        if (auto r = sandbox::enter_jail(options); !r) {
            std::fprintf(stderr, "%s\n", r.error().message.c_str());
            return 10;
        }
        if (::getuid() != kUid || ::getgid() != kUid) return 11;
        auto state = sandbox::jail_state();
        if (state.effective || state.permitted || state.inheritable || state.bounding || state.ambient) return 12;
        if (!state.no_new_privs || state.dumpable) return 13;
        // Nothing of the host: no /etc, /proc, /dev; the root is empty
        // but for the socket, and read-only.
        if (::access("/etc/passwd", F_OK) == 0 || ::access("/proc/self", F_OK) == 0 || ::access("/dev/null", F_OK) == 0)
            return 14;
        if (::open("/written", O_WRONLY | O_CREAT, 0600) >= 0 || errno != EROFS) return 15;
        size_t entries = 0;
        for (const auto& entry : fs::directory_iterator("/")) entries += entry.path() == "/own.sock" ? 1 : 100;
        if (entries != 1) return 16;
        // The bound socket still answers; a network namespace of its own has
        // no interface but lo, down.
        UniqueFd client(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un own{};
        own.sun_family = AF_UNIX;
        std::strcpy(own.sun_path, "/own.sock");
        if (::connect(client.get(), reinterpret_cast<sockaddr*>(&own), sizeof(own)) != 0) return 17;
        UniqueFd inet(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_in outside{};
        outside.sin_family = AF_INET;
        outside.sin_port = htons(22);
        outside.sin_addr.s_addr = htonl(0x7f000001);
        if (inet.valid() && ::connect(inet.get(), reinterpret_cast<sockaddr*>(&outside), sizeof(outside)) == 0) return 18;
        // Limits: no core file, few files.
        rlimit core{}, files{};
        ::getrlimit(RLIMIT_CORE, &core);
        ::getrlimit(RLIMIT_NOFILE, &files);
        if (core.rlim_max != 0 || files.rlim_max != 32) return 19;
        return 0;
    });
    EXPECT_EQ(status, 0) << "the check that failed is numbered in the test";
    // Nothing of the jail's user is left behind in the host's files.
    for (const auto& entry : fs::recursive_directory_iterator(dir_)) {
        struct stat st{};
        ASSERT_EQ(::lstat(entry.path().c_str(), &st), 0);
        if (entry.path() != socket_path) {
            EXPECT_NE(st.st_uid, kUid) << entry.path();
        }
    }
}

// A network namespace made ahead (as hospesd keeps them) is a fresh one of
// its own, joined by the jail; the maker's thread stays in the host's; and
// a descriptor that is no network namespace is refused.
TEST_F(JailTest, ANetworkNamespaceMadeAheadIsJoinedByTheJail) {
    auto own = fs::read_symlink("/proc/thread-self/ns/net");
    auto made = sandbox::make_network_namespace();
    ASSERT_TRUE(made) << made.error().message;
    EXPECT_EQ(fs::read_symlink("/proc/thread-self/ns/net"), own);
    EXPECT_TRUE(sandbox::check_network_namespace(made->get()));
    UniqueFd not_one(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    EXPECT_FALSE(sandbox::check_network_namespace(not_one.get()));
    UniqueFd mount_ns(::open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC));
    auto wrong = sandbox::check_network_namespace(mount_ns.get());
    ASSERT_FALSE(wrong);
    EXPECT_NE(wrong.error().message.find("not a network one"), std::string::npos) << wrong.error().message;

    struct stat made_ns{};
    ASSERT_EQ(::fstat(made->get(), &made_ns), 0);
    // A jailed child is in the namespace made ahead (its inode, seen from
    // here while the child waits).
    pid_t child = ::fork();
    if (child == 0) {
        sandbox::JailOptions options;
        options.uid = options.gid = kUid;
        options.limits = {32, 8, 1 << 20};
        options.network = made->get();
        if (!sandbox::enter_jail(options)) ::_exit(10);
        ::pause();
        ::_exit(0);
    }
    struct stat joined{};
    bool same = false;
    for (int i = 0; i < 200 && !same; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        same = ::stat(fmt::format("/proc/{}/ns/net", child).c_str(), &joined) == 0 && joined.st_ino == made_ns.st_ino;
    }
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    EXPECT_TRUE(same) << "the jailed child is not in the namespace made ahead";
}

// hospesd's pool: each namespace handed out is a new one, never the
// host's nor one handed out before.
TEST_F(JailTest, ThePoolHandsEachNetworkNamespaceOnce) {
    sandbox::NetworkNamespaces pool(2);
    std::set<ino_t> seen;
    std::vector<UniqueFd> held;  // (a freed namespace's number may be used again)
    struct stat host{};
    ASSERT_EQ(::stat("/proc/self/ns/net", &host), 0);
    for (int taken = 0; taken < 4;) {
        UniqueFd fd = pool.take();
        if (!fd.valid()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
            continue;
        }
        ++taken;
        EXPECT_TRUE(sandbox::check_network_namespace(fd.get()));
        struct stat ns{};
        ASSERT_EQ(::fstat(fd.get(), &ns), 0);
        EXPECT_NE(ns.st_ino, host.st_ino);
        EXPECT_TRUE(seen.insert(ns.st_ino).second) << "handed out twice";
        held.push_back(std::move(fd));
    }
}

TEST(SeccompFilter, ACallOffTheListKillsTheProcess) {
    sandbox::Allowlist list{"test", {}};
    list.allow("write").allow("exit_group").allow_if("mmap", {{2, PROT_EXEC, 0}});
    int status = in_child([&] {
        if (!sandbox::load_filter(list)) return 10;
        // Allowed: writing, and memory that cannot execute.
        void* memory = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (memory == MAP_FAILED) return 11;
        // Not: executable memory.
        ::mmap(nullptr, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return 12;
    });
    EXPECT_EQ(status, 128 + SIGSYS);
    status = in_child([&] {
        if (!sandbox::load_filter(list)) return 10;
        ::getppid();
        return 12;
    });
    EXPECT_EQ(status, 128 + SIGSYS);
}

// Each filter is only its own thread's: a thread may do what its list
// allows though another thread's forbids it.
TEST(SeccompFilter, EachThreadHasItsOwn) {
    int status = in_child([] {
        sandbox::Allowlist narrow{"narrow", {}};
        narrow.allow("futex").allow("exit").allow("madvise").allow("munmap").allow("rt_sigprocmask").allow("exit_group");
        std::thread confined([&] {
            if (!sandbox::load_filter(narrow)) ::_exit(10);
        });
        confined.join();
        // This thread has no filter: getppid is fine here.
        return ::getppid() > 0 ? 0 : 11;
    });
    EXPECT_EQ(status, 0);
}

// The monitor's lists stay under the goal (docs/security.md): fewer than
// Firecracker's thread for thread, fewer than 40 in all.
TEST(MonitorFilters, FewerCallsThanFirecrackerOnEveryThread) {
    MonitorFilterContext context{1, true};
    std::set<std::string> all;
    for (const auto& list : monitor_allowlists(context)) {
        auto calls = list.syscalls();
        all.insert(calls.begin(), calls.end());
        // Firecracker's vcpu, vmm and api threads allow 27, 50 and 31.
        size_t firecracker = list.thread == "vcpu" ? 27 : list.thread == "io" ? 50 : 31;
        EXPECT_LT(calls.size(), firecracker) << list.thread;
        for (const char* never : {"open", "openat", "execve", "ptrace", "fork", "clone", "clone3", "memfd_create",
                                  "io_uring_setup", "bpf", "mount", "unshare", "setns", "keyctl", "perf_event_open",
                                  "process_vm_readv", "kill"})
            EXPECT_EQ(std::count(calls.begin(), calls.end(), never), 0) << list.thread << " allows " << never;
    }
    // All four threads together: the goal.
    EXPECT_LT(all.size(), 40u);
    // Each loads (every name is a call of this architecture), on a thread
    // that then ends as the monitor's do.
    for (const auto& list : monitor_allowlists(context)) {
        int status = in_child([&] {
            bool loaded = false;
            std::thread thread([&] { loaded = static_cast<bool>(sandbox::load_filter(list)); });
            thread.join();
            return loaded ? 0 : 1;
        });
        EXPECT_EQ(status, 0) << list.thread;
    }
}

TEST_F(JailTest, TheJailerReportsWhyTheMonitorEnded) {
    auto report = dir_ / "exit.json";
    auto run = [&](const std::function<int(JailedMonitor&)>& monitor) {
        return in_child([&] {
            return run_jailed({kUid, kUid, report.string(), {}}, monitor);
        });
    };
    // A monitor that jails itself and powers off.
    int status = run([](JailedMonitor& jailed) {
        sandbox::JailOptions options;
        options.uid = options.gid = kUid;
        if (!jailed.enter(options)) return 1;
        jailed.report("poweroff");
        return 0;
    });
    EXPECT_EQ(status, 0);
    EXPECT_EQ(read_file(report), "{\"reason\":\"poweroff\",\"status\":0}\n");
    // One that makes a call off its filter: killed, a crash, and why.
    status = run([](JailedMonitor& jailed) {
        sandbox::JailOptions options;
        options.uid = options.gid = kUid;
        if (!jailed.enter(options)) return 1;
        sandbox::Allowlist list{"test", {}};
        list.allow("write").allow("exit_group");
        if (!sandbox::load_filter(list)) return 2;
        ::getppid();
        return 3;
    });
    EXPECT_EQ(status, 128 + SIGSYS);
    auto text = read_file(report);
    EXPECT_NE(text.find("\"reason\":\"crash\""), std::string::npos) << text;
    EXPECT_NE(text.find("SIGSYS"), std::string::npos) << text;
}

// A jailer that has logged nothing before its filter still tells why the
// monitor died, and ends by itself: its first message comes after the
// filter (here 200 ms after the monitor's jail, once it has joined it). A
// process of its own (gtest's "threadsafe" death test runs the binary
// again), since a forked child inherits the test runner's log state.
TEST_F(JailTest, TheJailerLogsACrashUnderItsFilter) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_EXIT(::_exit(run_jailed({kUid, kUid, "", {}},
                                   [](JailedMonitor& jailed) {
                                       sandbox::JailOptions options;
                                       options.uid = options.gid = kUid;
                                       if (!jailed.enter(options)) return 1;
                                       std::this_thread::sleep_for(std::chrono::milliseconds(200));
                                       sandbox::Allowlist list{"test", {}};
                                       list.allow("write").allow("exit_group");
                                       if (!sandbox::load_filter(list)) return 2;
                                       ::getppid();
                                       return 3;
                                   })),
                ::testing::ExitedWithCode(128 + SIGSYS), "");  // (killed itself: "Terminated by signal 31")
}

// SIGTERM to the jailer reaches the monitor (which is pid 1 of its own
// namespace: it sees no other process).
TEST_F(JailTest, TheJailerPassesSignalsOn) {
    auto report = dir_ / "exit.json";
    pid_t jailer = ::fork();
    if (jailer == 0) {
        ::_exit(run_jailed({kUid, kUid, report.string(), {}}, [](JailedMonitor& jailed) {
            if (::getpid() != 1) return 4;
            sigset_t set;
            sigemptyset(&set);
            sigaddset(&set, SIGTERM);
            ::sigprocmask(SIG_BLOCK, &set, nullptr);
            sandbox::JailOptions options;
            options.uid = options.gid = kUid;
            if (!jailed.enter(options)) return 1;
            timespec limit{10, 0};
            siginfo_t info{};
            int got = ::sigtimedwait(&set, &info, &limit);
            jailed.report(got == SIGTERM ? "signal" : "none");
            return got == SIGTERM ? 128 + SIGTERM : 5;
        }));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    ::kill(jailer, SIGTERM);
    int status = 0;
    ::waitpid(jailer, &status, 0);
    EXPECT_TRUE(WIFEXITED(status)) << status;
    EXPECT_EQ(WEXITSTATUS(status), 128 + SIGTERM);
    EXPECT_EQ(read_file(report), "{\"reason\":\"signal\",\"status\":143}\n");
}

// Once the guest has had time to start, the jailer shares the monitor's
// jail: its user, mount and network namespaces, no capability, a filter.
TEST_F(JailTest, TheJailerJoinsTheMonitorsJail) {
    pid_t jailer = ::fork();
    if (jailer == 0) {
        ::_exit(run_jailed({kUid, kUid, "", {}}, [](JailedMonitor& jailed) {
            sigset_t set;
            sigemptyset(&set);
            sigaddset(&set, SIGTERM);
            ::sigprocmask(SIG_BLOCK, &set, nullptr);
            sandbox::JailOptions options;
            options.uid = options.gid = kUid;
            if (!jailed.enter(options)) return 1;
            timespec limit{10, 0};
            siginfo_t info{};
            return ::sigtimedwait(&set, &info, &limit) == SIGTERM ? 0 : 5;
        }));
    }
    auto proc = [](pid_t pid, const char* what) { return fs::path("/proc") / std::to_string(pid) / what; };
    auto field = [&](const char* name) {
        std::string text = read_file(proc(jailer, "status")), key = std::string("\n") + name + ":";
        auto at = text.find(key);
        if (at == std::string::npos) return std::string();
        auto end = text.find('\n', at + 1);
        std::string value = text.substr(at + key.size(), end - at - key.size());
        value.erase(0, value.find_first_not_of(" \t"));
        return value;
    };
    // Its filter is the last step of its jail.
    for (int i = 0; i < 100 && field("Seccomp") != "2"; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(field("Seccomp"), "2");
    EXPECT_EQ(field("Uid").substr(0, field("Uid").find_first_of(" \t")), std::to_string(kUid));
    EXPECT_EQ(field("CapEff"), "0000000000000000");
    EXPECT_EQ(field("CapBnd"), "0000000000000000");
    EXPECT_EQ(field("NoNewPrivs"), "1");
    std::string children = read_file(proc(jailer, "task") / std::to_string(jailer) / "children");
    pid_t monitor = std::atoi(children.c_str());
    ASSERT_GT(monitor, 0) << children;
    for (const char* ns : {"ns/mnt", "ns/net"}) {
        EXPECT_EQ(fs::read_symlink(proc(jailer, ns)), fs::read_symlink(proc(monitor, ns))) << ns;
        EXPECT_NE(fs::read_symlink(proc(jailer, ns)), fs::read_symlink(proc(::getpid(), ns))) << ns;
    }
    EXPECT_TRUE(fs::is_empty(proc(jailer, "root")));
    ::kill(jailer, SIGTERM);
    int status = 0;
    ::waitpid(jailer, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST(CappedWriter, HoldsTheRateAndRotatesTheFile) {
    auto dir = fs::temp_directory_path() / ("hospes-capped-test-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    UniqueFd log(::open((dir / "console.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    UniqueFd previous(::open((dir / "console.log.1").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
    // 1 KiB per second after a burst of 4 KiB; files of 2 KiB at most.
    CappedWriter writer(log.get(), previous.get(), {1024, 4096, 2048});
    std::vector<uint8_t> line(100, 'x');
    line.back() = '\n';
    auto start = std::chrono::steady_clock::now();
    size_t offered = 0;
    while (std::chrono::steady_clock::now() - start < std::chrono::seconds(3)) {
        writer.write(line);
        offered += line.size();
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    uint64_t written = offered - writer.dropped();
    // The burst and three seconds at the rate, and the notices of what was dropped.
    EXPECT_GE(written, 4096u + 2 * 1024u);
    EXPECT_LE(written, 4096u + 4 * 1024u + 1024u);
    EXPECT_GT(writer.dropped(), offered / 2);
    auto size = fs::file_size(dir / "console.log"), old = fs::file_size(dir / "console.log.1");
    EXPECT_LE(size, 2048u);
    EXPECT_LE(old, 2048u);
    EXPECT_GT(old, 1024u) << "the previous generation kept";
    EXPECT_GE(writer.rotations(), written / 2048 - 1) << "rotated each time it was full";
    auto text = read_file(dir / "console.log") + read_file(dir / "console.log.1");
    EXPECT_NE(text.find("bytes of output dropped"), std::string::npos) << text;
    fs::remove_all(dir);
}

}  // namespace
}  // namespace hospes
