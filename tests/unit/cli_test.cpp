// The command line: option parsing with CLI11, sizes, the default guest,
// and the limits checked before any host resource is taken.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

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
