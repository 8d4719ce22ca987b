// The command line: option parsing with CLI11, sizes, the default guest,
// and the limits checked before any host resource is taken.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include <nlohmann/json.hpp>

#include "cli/run_command.hpp"
#include "common/size.hpp"
#include "vmm/machine.hpp"

namespace hospes {
namespace {

TEST(ParseSize, UnitsAndBareMiB) {
    EXPECT_EQ(parse_size("512M").value(), 512 * MiB);
    EXPECT_EQ(parse_size("4G").value(), 4 * GiB);
    EXPECT_EQ(parse_size("4608").value(), 4608 * MiB);
    EXPECT_EQ(parse_size("64k").value(), 64 * KiB);
    EXPECT_EQ(parse_size("2GiB").value(), 2 * GiB);
    EXPECT_EQ(parse_size("1TB").value(), 1024 * GiB);
}

TEST(ParseSize, RejectsGarbage) {
    for (const char* bad : {"", "M", "12Q", "-5M", "4GG", "1.5G", "99999999999999999999", "17179869184T"}) {
        auto r = parse_size(bad);
        EXPECT_FALSE(r) << bad;
        if (!r) {
            EXPECT_EQ(r.error().kind, ErrorKind::BadInput);
        }
    }
}

struct Parsed {
    bool ok;
    cli::RunOptions options;
};

Parsed parse(std::vector<std::string> args) {
    CLI::App app;
    cli::RunOptions options;
    cli::add_run_command(app, options);
    args.insert(args.begin(), "hospes");
    std::vector<const char*> argv;
    for (auto& a : args) argv.push_back(a.c_str());
    try {
        app.parse(static_cast<int>(argv.size()), argv.data());
    } catch (const CLI::ParseError&) {
        return {false, options};
    }
    return {true, options};
}

TEST(RunCommand, ParsesEveryOption) {
    auto p = parse({"run", "--kernel", "k", "--initrd", "i", "--cmdline", "console=hvc0", "--memory", "1G", "--vcpus",
                    "4"});
    ASSERT_TRUE(p.ok);
    EXPECT_EQ(p.options.kernel, "k");
    EXPECT_EQ(p.options.initrd, "i");
    EXPECT_EQ(p.options.cmdline, "console=hvc0");
    EXPECT_EQ(p.options.memory, "1G");
    EXPECT_EQ(p.options.vcpus, 4u);
}

TEST(RunCommand, DefaultsMatchTheDocumentation) {
    auto p = parse({"run"});
    ASSERT_TRUE(p.ok);
    EXPECT_EQ(p.options.memory, "512M");
    EXPECT_EQ(p.options.vcpus, 1u);
    EXPECT_TRUE(p.options.cmdline.empty());
    EXPECT_EQ(p.options.console, "serial");
    EXPECT_TRUE(p.options.disks.empty());
}

TEST(RunCommand, RepeatableDeviceOptions) {
    auto p = parse({"run", "--disk", "a.img", "--disk", "/dev/vg/b,ro", "--net", "tap=t0", "--net", "bridge=br0",
                    "--console", "virtio", "--root", "/dev/vda"});
    ASSERT_TRUE(p.ok);
    EXPECT_EQ(p.options.disks, (std::vector<std::string>{"a.img", "/dev/vg/b,ro"}));
    EXPECT_EQ(p.options.nets, (std::vector<std::string>{"tap=t0", "bridge=br0"}));
    EXPECT_EQ(p.options.console, "virtio");
    EXPECT_EQ(p.options.root, "/dev/vda");
}

TEST(MachineConfig, ConsoleAndRootShapeTheCommandLine) {
    cli::RunOptions options;
    options.kernel = "k";
    auto serial = cli::machine_config(options, "/nonexistent");
    ASSERT_TRUE(serial);
    EXPECT_EQ(serial->cmdline, cli::kDefaultCmdline);
    EXPECT_EQ(serial->console, ConsoleKind::Serial);
    options.console = "virtio";
    options.root = "/dev/vda";
    options.disks = {"disk.img,ro"};
    options.nets = {"tap=vif1,mac=02:00:00:00:00:07"};
    auto config = cli::machine_config(options, "/nonexistent");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->console, ConsoleKind::Virtio);
    EXPECT_EQ(config->cmdline, std::string(cli::kDefaultVirtioConsoleCmdline) + " root=/dev/vda");
    ASSERT_EQ(config->disks.size(), 1u);
    EXPECT_TRUE(config->disks[0].read_only);
    ASSERT_EQ(config->nets.size(), 1u);
    EXPECT_EQ(config->nets[0].tap, "vif1");
    options.cmdline = "console=ttyS0 quiet";
    EXPECT_EQ(cli::machine_config(options, "/nonexistent")->cmdline, "console=ttyS0 quiet root=/dev/vda");
    for (auto bad : {"tty", ""}) {
        options.console = bad;
        auto r = cli::machine_config(options, "/nonexistent");
        ASSERT_FALSE(r) << bad;
        EXPECT_EQ(r.error().message.rfind("--console", 0), 0u);
    }
    options.console = "serial";
    options.root = "/dev/vda init=/bin/sh";
    EXPECT_FALSE(cli::machine_config(options, "/nonexistent"));
}

TEST(RunCommand, RejectsMalformedOptions) {
    EXPECT_FALSE(parse({"run", "--vcpus", "two"}).ok);
    EXPECT_FALSE(parse({"run", "--vcpus", "-1"}).ok);
    EXPECT_FALSE(parse({"run", "--kernel"}).ok);
    EXPECT_FALSE(parse({"run", "--frobnicate"}).ok);
}

TEST(MachineConfig, DefaultGuestFromDirectory) {
    auto dir = std::filesystem::temp_directory_path() / "hospes-cli-test";
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "vmlinuz") << "x";
    cli::RunOptions options;
    auto config = cli::machine_config(options, dir.string());
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->kernel_path, (dir / "vmlinuz").string());
    EXPECT_EQ(config->initrd_path, (dir / "initramfs.cpio.gz").string());
    EXPECT_EQ(config->memory_size, 512 * MiB);
    std::filesystem::remove_all(dir);

    auto missing = cli::machine_config(options, dir.string());
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message.find("make guest"), std::string::npos);
}

TEST(MachineConfig, BadMemoryNamesTheOption) {
    cli::RunOptions options;
    options.kernel = "k";
    options.memory = "lots";
    auto config = cli::machine_config(options, "/nonexistent");
    ASSERT_FALSE(config);
    EXPECT_EQ(config.error().message.rfind("--memory", 0), 0u);
}

TEST(MachineLimits, VcpusAndMemory) {
    MachineConfig config;
    config.memory_size = 512 * MiB;
    config.vcpus = 1;
    EXPECT_TRUE(check_machine_limits(config, 1024, 24 * GiB));
    config.vcpus = 0;
    EXPECT_FALSE(check_machine_limits(config, 1024, 24 * GiB));
    config.vcpus = 255;
    EXPECT_FALSE(check_machine_limits(config, 1024, 24 * GiB)) << "MP table limit";
    config.vcpus = 8;
    EXPECT_FALSE(check_machine_limits(config, 4, 24 * GiB)) << "KVM limit";
    config.vcpus = 1;
    config.memory_size = 1 * MiB;
    auto small = check_machine_limits(config, 1024, 24 * GiB);
    ASSERT_FALSE(small);
    EXPECT_NE(small.error().message.find("too small"), std::string::npos);
    config.memory_size = 32 * GiB;
    auto large = check_machine_limits(config, 1024, 24 * GiB);
    ASSERT_FALSE(large);
    EXPECT_NE(large.error().message.find("too large"), std::string::npos);
    config.memory_size = 512 * MiB + 100;
    EXPECT_FALSE(check_machine_limits(config, 1024, 24 * GiB));
    config.memory_size = 513 * MiB;
    config.hugepages = true;
    auto odd = check_machine_limits(config, 1024, 24 * GiB);
    ASSERT_FALSE(odd) << "huge pages come in 2 MiB";
    EXPECT_NE(odd.error().message.find("--hugepages"), std::string::npos);
    config.memory_size = 514 * MiB;
    EXPECT_TRUE(check_machine_limits(config, 1024, 24 * GiB));
}

}  // namespace
}  // namespace hospes

// `xl create -n` (hospes under its xl name) as a process: the domain file
// read and printed as JSON with overrides applied; a bad file or override
// is one error line and status 2.
namespace xl_create {

struct Outcome {
    int status;
    std::string out, err;
};

Outcome run_xl(const std::string& args) {
    auto dir = std::filesystem::temp_directory_path() / ("xl-create-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::string command = std::string(HOSPES_XL_BINARY) + " " + args + " >" + (dir / "out").string() + " 2>" +
                          (dir / "err").string();
    int raw = std::system(command.c_str());
    auto slurp = [](const std::filesystem::path& p) {
        std::ifstream in(p);
        return std::string(std::istreambuf_iterator<char>(in), {});
    };
    Outcome o{WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, slurp(dir / "out"), slurp(dir / "err")};
    std::filesystem::remove_all(dir);
    return o;
}

TEST(XlCreate, DryRunPrintsTheDomainWithOverrides) {
    auto o = run_xl("create -n " + std::string(HOSPES_XL_DIR) + "/web1.cfg vcpus=3 'extra+=\" loglevel=3\"'");
    ASSERT_EQ(o.status, 0) << o.err;
    auto d = nlohmann::json::parse(o.out);
    EXPECT_EQ(d["name"], "web1");
    EXPECT_EQ(d["vcpus"], 3);
    EXPECT_EQ(d["memory_mib"], 1024);
    EXPECT_EQ(d["cmdline"], "root=/dev/xvda1 ro console=hvc0 quiet loglevel=3");
    EXPECT_EQ(d["disks"][2]["target"], "/srv/images/disk:with:colons.img");
    EXPECT_EQ(d["vifs"][0]["mac"], "00:16:3e:12:34:56");
    EXPECT_EQ(d["on_crash"], "preserve");
    EXPECT_EQ(o.err, "");
}

TEST(XlCreate, ABadFileOrOverrideIsOneErrorLineAndStatusTwo) {
    auto bad = run_xl("create -n " + std::string(HOSPES_XL_DIR) + "/web1.cfg memory=lots");
    EXPECT_EQ(bad.status, 2);
    EXPECT_EQ(bad.out, "");
    EXPECT_EQ(bad.err,
              "hospes: error: argument 'memory=lots':1:8: expected a value: a string in quotes, a number or a [list]\n");
    auto missing = run_xl("create -n /nonexistent/web9.cfg");
    EXPECT_EQ(missing.status, 2);
    EXPECT_EQ(missing.err, "hospes: error: /nonexistent/web9.cfg: cannot read it: No such file or directory\n");
    auto hvm = run_xl("create -n " + std::string(HOSPES_XL_DIR) + "/web1.cfg type='\"hvm\"'");
    EXPECT_EQ(hvm.status, 2);
    EXPECT_NE(hvm.err.find("type: HVM guests are not supported"), std::string::npos) << hvm.err;
}

}  // namespace xl_create
