// Domain files read with xl.cfg(5)'s meaning: the domain, every disk form
// of xl-disk-configuration(5), the vif forms of xl-network-configuration(5),
// warnings for keys ignored or unknown, and one error for a wrong value.
#include "toolstack/domain_config.hpp"

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace {

using namespace hospes::toolstack;
using hospes::Result;

Result<DomainConfig> domain_of(std::string_view text) {
    auto config = parse_xl_config(text, "d.cfg");
    if (!config) return std::unexpected(config.error());
    return domain_from_xl(*config);
}
std::string error_of(std::string_view text) {
    auto domain = domain_of(text);
    return domain ? "(accepted)" : domain.error().message;
}
constexpr std::string_view kMinimal = "name = 'x'\nkernel = '/boot/vmlinuz'\n";

TEST(DomainConfig, ReadsATypicalDomainFile) {
    std::ifstream in(std::string(HOSPES_XL_DIR) + "/web1.cfg");
    std::stringstream text;
    text << in.rdbuf();
    auto config = parse_xl_config(text.str(), "web1.cfg");
    ASSERT_TRUE(config) << config.error().message;
    auto d = domain_from_xl(*config);
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_EQ(d->name, "web1");
    EXPECT_EQ(d->type, "pvh");
    EXPECT_EQ(d->memory_mib, 1024u);
    EXPECT_EQ(d->maxmem_mib, 2048u);
    EXPECT_EQ(d->vcpus, 2u);
    EXPECT_EQ(d->maxvcpus, 4u);
    EXPECT_EQ(d->cpus, std::vector<std::string>{"0-1"});
    EXPECT_EQ(d->cpu_weight, 512u);
    EXPECT_EQ(d->cpu_cap, 50u);
    EXPECT_EQ(d->uuid, "4f6c6d3a-8a0e-4d38-9c1f-2b1f5f0e7a11");
    EXPECT_EQ(d->kernel, "/srv/kernels/vmlinuz-6.1.0-27-amd64");
    EXPECT_EQ(d->ramdisk, "/srv/kernels/initrd.img-6.1.0-27-amd64");
    EXPECT_EQ(d->cmdline, "root=/dev/xvda1 ro console=hvc0 quiet");  // root= then extra=
    ASSERT_EQ(d->disks.size(), 3u);
    EXPECT_EQ(d->disks[0].target, "/dev/vg0/web1-root");
    EXPECT_EQ(d->disks[0].guest_device, "vda");
    EXPECT_FALSE(d->disks[0].read_only);
    EXPECT_EQ(d->disks[1].target, "/srv/images/web1-data.img");
    EXPECT_EQ(d->disks[1].guest_device, "vdb");
    EXPECT_TRUE(d->disks[1].read_only);
    EXPECT_EQ(d->disks[2].target, "/srv/images/disk:with:colons.img");
    EXPECT_EQ(d->disks[2].vdev, "xvdc");
    ASSERT_EQ(d->vifs.size(), 1u);
    EXPECT_EQ(d->vifs[0].mac, (std::array<uint8_t, 6>{0x00, 0x16, 0x3e, 0x12, 0x34, 0x56}));
    EXPECT_EQ(d->vifs[0].bridge, "xenbr0");
    EXPECT_EQ(d->vifs[0].ips, std::vector<std::string>{"192.0.2.10"});
    EXPECT_EQ(d->vifs[0].rate_bytes_per_second, 1'250'000u);  // 10 Mbit/s
    EXPECT_EQ(d->vifs[0].rate_burst_bytes, 62'500u);          // xl's 50 ms of credit
    EXPECT_EQ(d->on_poweroff, DomainAction::Destroy);
    EXPECT_EQ(d->on_reboot, DomainAction::Restart);
    EXPECT_EQ(d->on_crash, DomainAction::Preserve);
    EXPECT_TRUE(d->warnings.empty()) << d->warnings.front();
}

TEST(DomainConfig, DefaultsFollowXl) {
    auto d = domain_of(kMinimal);
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_EQ(d->vcpus, 1u);
    EXPECT_EQ(d->maxvcpus, 1u);
    EXPECT_EQ(d->memory_mib, d->maxmem_mib);
    EXPECT_EQ(d->cpu_weight, 256u);
    EXPECT_EQ(d->cpu_cap, 0u);
    EXPECT_EQ(d->on_poweroff, DomainAction::Destroy);
    EXPECT_EQ(d->on_reboot, DomainAction::Restart);
    EXPECT_EQ(d->on_crash, DomainAction::Destroy);
    auto c = domain_of(std::string(kMinimal) + "cmdline = 'console=hvc0'\nroot = '/dev/xvda1'\nextra = 'quiet'\n");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->cmdline, "console=hvc0");  // cmdline= wins over root= and extra=
}

struct DiskCase {
    const char* spec;
    const char* target;
    const char* vdev;
    bool read_only, cdrom;
};

TEST(DomainConfig, EveryDiskFormOfTheManual) {
    const DiskCase cases[] = {
        {"/dev/vg/guest-volume,,hda", "/dev/vg/guest-volume", "hda", false, false},
        {"/dev/vg/guest-volume,raw,hda,rw", "/dev/vg/guest-volume", "hda", false, false},
        {"format=raw, vdev=hda, access=rw, target=/dev/vg/guest-volume", "/dev/vg/guest-volume", "hda", false, false},
        {"raw:/dev/vg/guest-volume,hda,w", "/dev/vg/guest-volume", "hda", false, false},
        {"/root/image.iso,,hdc,cdrom", "/root/image.iso", "hdc", true, true},
        {"/root/image.iso,,hdc,,cdrom", "/root/image.iso", "hdc", true, true},
        {"/root/image.iso,raw,hdc,devtype=cdrom", "/root/image.iso", "hdc", true, true},
        {"format=raw, vdev=hdc, access=ro, devtype=cdrom, target=/root/image.iso", "/root/image.iso", "hdc", true, true},
        {"raw:/root/image.iso,hdc:cdrom,ro", "/root/image.iso", "hdc", true, true},
        {"phy:/dev/vg/web1,xvda,w", "/dev/vg/web1", "xvda", false, false},
        {"file:/srv/img,xvdb,r", "/srv/img", "xvdb", true, false},
        {"tap:aio:/srv/img,xvdc,w", "/srv/img", "xvdc", false, false},
        {"tap2:tapdisk:aio:/srv/img,sdb,ro", "/srv/img", "sdb", true, false},
        {"phy:vg0/web1,xvda,w", "/dev/vg0/web1", "xvda", false, false},  // /dev prepended, as xl does
        {"vdev=xvde, access=r, target=/srv/a,b:c.img", "/srv/a,b:c.img", "xvde", true, false},
        {"  /srv/x.img , raw , xvdf , rw , discard", "/srv/x.img", "xvdf", false, false},
    };
    for (const auto& c : cases) {
        std::vector<std::string> warnings;
        auto disk = parse_disk_spec(c.spec, warnings);
        ASSERT_TRUE(disk) << c.spec << ": " << disk.error().message;
        EXPECT_EQ(disk->target, c.target) << c.spec;
        EXPECT_EQ(disk->vdev, c.vdev) << c.spec;
        EXPECT_EQ(disk->read_only, c.read_only) << c.spec;
        EXPECT_EQ(disk->cdrom, c.cdrom) << c.spec;
    }
    std::vector<std::string> warnings;
    auto error = [&](const char* spec) {
        auto disk = parse_disk_spec(spec, warnings);
        return disk ? std::string("(accepted)") : disk.error().message;
    };
    EXPECT_EQ(error("qcow2:/srv/x.qcow2,xvda,w"),
              "disk 'qcow2:/srv/x.qcow2,xvda,w': format qcow2 is not supported: hospes serves raw images and block devices");
    EXPECT_EQ(error("/srv/x,,xvda,rw,extra"), "disk '/srv/x,,xvda,rw,extra': too many positional parameters at 'extra'");
    EXPECT_EQ(error("/srv/x"), "disk '/srv/x': no vdev (the guest's name for it: xvda, sdb, ...)");
    EXPECT_EQ(error("/srv/x,,xvda1"),
              "disk '/srv/x,,xvda1': 'xvda1' is not a disk name like xvda, sdb or hdc (partitions are not given to guests)");
    EXPECT_EQ(error("/srv/x,,xvda,maybe"), "disk '/srv/x,,xvda,maybe': access 'maybe' is not ro, r, rw or w");
    EXPECT_EQ(error("iscsi:iqn.2001-04.com.example:disk,xvda,w"),
              "disk 'iscsi:iqn.2001-04.com.example:disk,xvda,w': block scripts (iscsi) are not supported: give the "
              "block device's path");
    EXPECT_EQ(error("colour=red,/srv/x,,xvda"), "disk 'colour=red,/srv/x,,xvda': unknown parameter 'colour'");
    EXPECT_EQ(error("/srv/x.iso,,hdc:cdrom,w"), "disk '/srv/x.iso,,hdc:cdrom,w': a CD-ROM is read-only");
    EXPECT_EQ(error(",,hdc,cdrom"), "disk ',,hdc,cdrom': an empty CD-ROM drive is not supported");
    EXPECT_TRUE(parse_disk_spec("/srv/x,,xvda,backendtype=phy", warnings));
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_EQ(warnings[0], "disk '/srv/x,,xvda,backendtype=phy': backendtype ignored: hospes serves every disk over virtio");
}

TEST(DomainConfig, VdevNamesGiveTheGuestsDisksInOrder) {
    EXPECT_EQ(*vdev_index("xvda"), 0u);
    EXPECT_EQ(*vdev_index("sdb"), 1u);
    EXPECT_EQ(*vdev_index("hdc"), 2u);
    EXPECT_EQ(*vdev_index("xvdz"), 25u);
    EXPECT_EQ(*vdev_index("xvdaa"), 26u);
    EXPECT_FALSE(vdev_index("hdaa"));
    EXPECT_FALSE(vdev_index("nvme0n1"));
    auto d = domain_of(std::string(kMinimal) + "disk = [ '/srv/c,,xvdc', '/srv/a,,sda', '/srv/b,,hdb' ]\n");
    ASSERT_TRUE(d) << d.error().message;
    ASSERT_EQ(d->disks.size(), 3u);
    EXPECT_EQ(d->disks[0].target, "/srv/a");
    EXPECT_EQ(d->disks[0].guest_device, "vda");
    EXPECT_EQ(d->disks[1].target, "/srv/b");
    EXPECT_EQ(d->disks[2].guest_device, "vdc");
    EXPECT_EQ(error_of(std::string(kMinimal) + "disk = [ '/srv/a,,xvda', '/srv/b,,sda' ]\n"),
              "d.cfg: disk: xvda and sda are the same drive");
}

TEST(DomainConfig, VifFormsOfTheManual) {
    std::vector<std::string> warnings;
    auto vif = parse_vif_spec("mac=00:16:3E:74:3d:76,model=rtl8139,bridge=xenbr0", warnings);
    ASSERT_TRUE(vif) << vif.error().message;
    EXPECT_EQ(vif->mac, (std::array<uint8_t, 6>{0x00, 0x16, 0x3e, 0x74, 0x3d, 0x76}));
    EXPECT_EQ(vif->bridge, "xenbr0");
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_EQ(warnings[0], "vif 'mac=00:16:3E:74:3d:76,model=rtl8139,bridge=xenbr0': model ignored: every card is virtio-net");
    auto empty = parse_vif_spec("", warnings);
    ASSERT_TRUE(empty);
    EXPECT_FALSE(empty->mac);
    auto ips = parse_vif_spec("ip=192.0.2.1 2001:db8::1,vifname=web1.0,mtu=9000", warnings);
    ASSERT_TRUE(ips) << ips.error().message;
    EXPECT_EQ(ips->ips, (std::vector<std::string>{"192.0.2.1", "2001:db8::1"}));
    EXPECT_EQ(ips->vifname, "web1.0");
    EXPECT_EQ(ips->mtu, 9000u);

    EXPECT_EQ(*parse_vif_rate("10Mb/s"), (std::pair<uint64_t, uint64_t>{1'250'000, 62'500}));
    EXPECT_EQ(*parse_vif_rate("250KB/s"), (std::pair<uint64_t, uint64_t>{250'000, 12'500}));
    EXPECT_EQ(*parse_vif_rate("1MB/s@20ms"), (std::pair<uint64_t, uint64_t>{1'000'000, 20'000}));
    EXPECT_EQ(*parse_vif_rate("1GB/s@1s"), (std::pair<uint64_t, uint64_t>{1'000'000'000, 1'000'000'000}));
    EXPECT_EQ(*parse_vif_rate("800b/s@500us"), (std::pair<uint64_t, uint64_t>{100, 0}));
    EXPECT_FALSE(parse_vif_rate("10Mbit"));
    EXPECT_FALSE(parse_vif_rate("0MB/s"));
    EXPECT_FALSE(parse_vif_rate("1MB/s@"));
    EXPECT_FALSE(parse_vif_rate("10TB/s"));

    auto error = [&](const char* spec) {
        auto v = parse_vif_spec(spec, warnings);
        return v ? std::string("(accepted)") : v.error().message;
    };
    EXPECT_EQ(error("mac=01:00:5e:00:00:01"), "vif 'mac=01:00:5e:00:00:01': mac '01:00:5e:00:00:01' is a multicast address");
    EXPECT_EQ(error("colour=red"), "vif 'colour=red': unknown key 'colour'");
    EXPECT_EQ(error("ip=10.0.0.300"), "vif 'ip=10.0.0.300': '10.0.0.300' is not an IPv4 or IPv6 address");
    EXPECT_EQ(error("bridge"), "vif 'bridge': 'bridge' is not key=value");
}

TEST(DomainConfig, IgnoredAndUnknownKeysAreWarningsNamingFileAndLine) {
    auto d = domain_of(std::string(kMinimal) + "vnc = 1\nbootloader = 'pygrub'\nfavourite_colour = 'blue'\n");
    ASSERT_TRUE(d) << d.error().message;
    ASSERT_EQ(d->warnings.size(), 3u);
    EXPECT_EQ(d->warnings[0], "d.cfg:3: 'vnc' ignored: hospes guests have no framebuffer");
    EXPECT_EQ(d->warnings[1], "d.cfg:4: 'bootloader' ignored: hospes boots kernel= directly; give kernel= (and ramdisk=)");
    EXPECT_EQ(d->warnings[2], "d.cfg:5: unknown key 'favourite_colour' ignored");
}

TEST(DomainConfig, AWrongValueIsOneErrorNamingFileLineAndKey) {
    EXPECT_EQ(error_of("kernel = '/boot/vmlinuz'\n"), "d.cfg: no name= (every domain needs one)");
    EXPECT_EQ(error_of("name = 'x'\n"), "d.cfg: no kernel= (hospes boots the kernel directly; bootloaders are not run)");
    EXPECT_EQ(error_of(std::string(kMinimal) + "type = 'hvm'\n"),
              "d.cfg:3: type: HVM guests are not supported: hospes boots kernels as PV or PVH");
    EXPECT_EQ(error_of(std::string(kMinimal) + "memory = '512'\n"), "d.cfg:3: memory: expected a number");
    EXPECT_EQ(error_of(std::string(kMinimal) + "memory = 0\n"), "d.cfg:3: memory: 0 is not a number from 4 to 1048576");
    EXPECT_EQ(error_of(std::string(kMinimal) + "memory = 1024\nmaxmem = 512\n"),
              "d.cfg:4: maxmem: 512 MiB is less than memory= (1024 MiB)");
    EXPECT_EQ(error_of(std::string(kMinimal) + "vcpus = 4\nmaxvcpus = 2\n"), "d.cfg:4: maxvcpus: 2 is less than vcpus= (4)");
    EXPECT_EQ(error_of(std::string(kMinimal) + "cpus = '0-3,nodes:1'\n"),
              "d.cfg:3: cpus: 'nodes:1': NUMA node terms are not supported; give CPU numbers");
    EXPECT_EQ(error_of(std::string(kMinimal) + "cpus = '3-1'\n"),
              "d.cfg:3: cpus: '3-1' is not a CPU, a range of CPUs like 2-5, ^N or all");
    EXPECT_EQ(error_of(std::string(kMinimal) + "vcpus = 2\ncpus = ['0', '1', '2']\n"),
              "d.cfg: cpus: 3 lists for 2 vCPUs (give one list for all, or one per vCPU)");
    EXPECT_EQ(error_of(std::string(kMinimal) + "cpu_weight = 70000\n"),
              "d.cfg:3: cpu_weight: 70000 is not a number from 1 to 65535");
    EXPECT_EQ(error_of(std::string(kMinimal) + "on_crash = 'reboot'\n"),
              "d.cfg:3: on_crash: 'reboot' is not destroy, restart, rename-restart, preserve, coredump-destroy or "
              "coredump-restart");
    EXPECT_EQ(error_of(std::string(kMinimal) + "uuid = 'not-a-uuid'\n"),
              "d.cfg:3: uuid: 'not-a-uuid' is not a UUID like 4f6c6d3a-8a0e-4d38-9c1f-2b1f5f0e7a11");
    EXPECT_EQ(error_of(std::string(kMinimal) + "disk = [ '/srv/x' ]\n"),
              "d.cfg:3: disk: disk '/srv/x': no vdev (the guest's name for it: xvda, sdb, ...)");
    EXPECT_EQ(error_of(std::string(kMinimal) + "firmware = 'pvgrub64'\n"),
              "d.cfg:3: firmware: hospes boots kernel= directly, without firmware (pvgrub, bios, uefi)");
    EXPECT_EQ(error_of(std::string(kMinimal) + "pci = [ '01:00.0' ]\n"), "d.cfg:3: pci: device passthrough is not supported");
    // The user's text in a message is escaped: it stays one line.
    EXPECT_EQ(error_of(std::string(kMinimal) + "vif = [ 'bridge=br0,colour=x\\nred' ]\n"),
              "d.cfg:3: vif: vif 'bridge=br0,colour=x\\nred': unknown key 'colour'");
    EXPECT_EQ(error_of(std::string(kMinimal) + "on_crash = 'a\\tb\\x01'\n"),
              "d.cfg:3: on_crash: 'a\\tb\\x01' is not destroy, restart, rename-restart, preserve, coredump-destroy or "
              "coredump-restart");
    EXPECT_EQ(error_of("name = 'a b'\nkernel = '/k'\n"),
              "d.cfg:1: name: 'a b' is not a domain name (1 to 64 characters, no '/' or spaces)");
}

}  // namespace
