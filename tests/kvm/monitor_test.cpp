// `hospes run` end to end on this host's /dev/kvm with the freestanding
// test guest (tests/kvm/guest): console output, interactive input, the MP
// table and SMP start-up as a guest sees them, exit statuses, and the one
// clear error line for bad input.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

namespace {

// The monitor and the test guest: where the build put them, or where the
// environment says (HOSPES_BINARY, HOSPES_TEST_GUEST), as inside the lab.
std::string from_env(const char* name, const char* built) {
    const char* value = std::getenv(name);
    return value != nullptr && *value != '\0' ? value : built;
}
const std::string kHospes = from_env("HOSPES_BINARY", HOSPES_BINARY);
const std::string kGuest = from_env("HOSPES_TEST_GUEST", TEST_GUEST);

struct Outcome {
    int status;
    std::string output;  // stdout and stderr
};

Outcome run(const std::string& arguments, const std::string& input = "") {
    std::string command = "exec " + kHospes + " run " + arguments + " 2>&1";
    if (!input.empty()) command = "printf '" + input + "' | " + command;
    else command += " </dev/null";
    FILE* pipe = ::popen(command.c_str(), "r");
    Outcome outcome{-1, ""};
    if (pipe == nullptr) return outcome;
    std::array<char, 4096> buffer;
    size_t n;
    while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) outcome.output.append(buffer.data(), n);
    int status = ::pclose(pipe);
    outcome.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return outcome;
}

Outcome guest(const std::string& scenario, const std::string& extra = "", const std::string& input = "") {
    return run("--kernel " + kGuest + " --memory 64M --cmdline " + scenario + " " + extra, input);
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

int error_lines(const std::string& output) {
    int lines = 0;
    for (size_t at = output.find("hospes: error:"); at != std::string::npos; at = output.find("hospes: error:", at + 1))
        ++lines;
    return lines;
}

TEST(Monitor, GuestConsoleAndResetExitZero) {
    auto r = guest("hello");
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_TRUE(contains(r.output, "hello from the test guest\n")) << r.output;
}

TEST(Monitor, InputReachesTheGuest) {
    auto r = guest("echo", "", "typed by the host\\n");
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_TRUE(contains(r.output, "ready\ntyped by the host\n")) << r.output;
}

TEST(Monitor, MpTableAnnouncesEveryVcpu) {
    for (int vcpus : {1, 2, 5}) {
        auto r = guest("mptable", "--vcpus " + std::to_string(vcpus));
        EXPECT_EQ(r.status, 0) << r.output;
        EXPECT_TRUE(contains(r.output, "processors=" + std::to_string(vcpus) + "\n")) << r.output;
    }
}

TEST(Monitor, ApplicationProcessorsStartWithInitSipi) {
    auto r = guest("smp", "--vcpus 3");
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_TRUE(contains(r.output, "started=2\n")) << r.output;
}

TEST(Monitor, UnclaimedMmioReadsAllOnes) {
    auto r = guest("mmio");
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_TRUE(contains(r.output, "mmio=ffffffff\n")) << r.output;
}

TEST(Monitor, LowMemoryEndsBelowTheHoleForLargeGuests) {
    auto r = run("--kernel " + kGuest + " --cmdline memory --memory 4608M");
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_TRUE(contains(r.output, "top=c0000000 pattern ok")) << r.output;
}

TEST(Monitor, RtcShowsTheHostDate) {
    std::time_t now = std::time(nullptr);
    std::tm utc{};
    gmtime_r(&now, &utc);
    char expected[32];
    std::snprintf(expected, sizeof(expected), "rtc=%04d-%x\n", utc.tm_year + 1900,
                  ((utc.tm_mon + 1) / 10) * 16 + (utc.tm_mon + 1) % 10);
    auto r = guest("rtc");
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_TRUE(contains(r.output, expected)) << r.output << " expected " << expected;
}

TEST(Monitor, KvmParavirtualFeaturesAreExposed) {
    auto r = guest("cpuid");
    EXPECT_EQ(r.status, 0) << r.output;
    auto at = r.output.find("signature=KVMKVMKVM features=");
    ASSERT_NE(at, std::string::npos) << r.output;
    unsigned long features = std::stoul(r.output.substr(at + 29), nullptr, 16);
    EXPECT_TRUE(features & (1u << 3)) << "kvm-clock (CLOCKSOURCE2)";
    EXPECT_TRUE(features & (1u << 6)) << "PV EOI";
    EXPECT_TRUE(features & (1u << 7)) << "PV unhalt, which PV spinlocks need";
    EXPECT_TRUE(contains(r.output, "apic=0 hypervisor\n")) << r.output;
}

TEST(Monitor, TripleFaultExitsThreeWithRegisterDump) {
    auto r = guest("triple");
    EXPECT_EQ(r.status, 3) << r.output;
    EXPECT_TRUE(contains(r.output, "triple fault")) << r.output;
    EXPECT_TRUE(contains(r.output, "rip=0x")) << r.output;
    // The state at the fault (the test guest's page tables), unless KVM
    // reset the vCPU first, as it does on AMD, and the dump says so.
    EXPECT_TRUE(contains(r.output, "cr3=0x0000000000009000") || contains(r.output, "these are the vCPU's reset values"))
        << r.output;
}

TEST(Monitor, BadInputIsOneErrorLineAndStatusTwo) {
    const std::string kernel = "--kernel " + kGuest;
    const std::string ro_disk = " --disk " + kGuest + ",ro";
    const std::string cases[] = {
        "--kernel /nonexistent/bzImage",
        "--kernel /etc/hostname",
        kernel + " --vcpus 0",
        kernel + " --vcpus 100000",
        kernel + " --memory 1M",
        kernel + " --memory 100T",
        kernel + " --memory twelve",
        kernel + " --initrd /nonexistent/initrd",
        kernel + " --frobnicate",
        "--kernel /dev",
        kernel + " --disk /nonexistent/disk.img",
        kernel + " --disk /dev",
        kernel + " --disk /etc/hostname",  // smaller than a sector
        kernel + " --disk " + kGuest + ",readonly",
        kernel + " --disk ,ro",
        kernel + " --net tap=a/b",
        kernel + " --net mac=02:00:00:00:00:01",
        kernel + " --net tap=t0,mac=01:00:00:00:00:01",
        kernel + " --console tty",
        kernel + " --root '/dev/vda init=/bin/sh'",
        // Nine virtio devices: the entropy source and eight disks.
        kernel + ro_disk + ro_disk + ro_disk + ro_disk + ro_disk + ro_disk + ro_disk + ro_disk,
    };
    for (const auto& arguments : cases) {
        auto r = run(arguments);
        EXPECT_EQ(r.status, 2) << arguments << ": " << r.output;
        EXPECT_EQ(error_lines(r.output), 1) << arguments << ": " << r.output;
        EXPECT_FALSE(contains(r.output, "core dumped")) << arguments;
    }
}

}  // namespace
