#include "toolstack/domain_config.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <map>

#include "cli/device_options.hpp"

namespace hospes::toolstack {

namespace {

// A message quotes the user's text: control characters in it (a "\n" in a
// quoted string is a real newline) are escaped, so it stays one line.
std::string one_line(std::string_view text) {
    std::string out;
    for (char c : text) {
        if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
        else out += c;
    }
    return out;
}
// The user's text quoted for a message.
std::string escaped(std::string_view text) { return "'" + one_line(text) + "'"; }
template <class T>
Result<T> one_line(Result<T> result) {
    if (!result) result.error().message = one_line(result.error().message);
    return result;
}
void one_line(std::vector<std::string>& lines, size_t from) {
    for (size_t i = from; i < lines.size(); ++i) lines[i] = one_line(lines[i]);
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

std::optional<uint64_t> decimal(std::string_view text) {
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return value;
}

// An xl NUMBER as written: decimal, 0-octal or 0x-hex.
std::optional<uint64_t> xl_number(std::string_view text) {
    int base = 10;
    if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
        base = 16;
        text.remove_prefix(2);
    } else if (text.size() > 1 && text[0] == '0') {
        base = 8;
        text.remove_prefix(1);
    }
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
    if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return value;
}

// Keys hospes accepts and does not use, with the reason the warning gives.
const std::map<std::string_view, std::string_view>& ignored_keys() {
    static const std::map<std::string_view, std::string_view> keys = {
        {"bootloader", "hospes boots kernel= directly; give kernel= (and ramdisk=)"},
        {"bootloader_args", "hospes runs no bootloader"},
        {"builder", "type= says it"},
        {"cpus_soft", "soft affinity is left to the host scheduler"},
        {"pool", "hospes has no CPU pools"},
        {"vnc", "hospes guests have no framebuffer"},
        {"vnclisten", "hospes guests have no framebuffer"},
        {"vncdisplay", "hospes guests have no framebuffer"},
        {"vncunused", "hospes guests have no framebuffer"},
        {"vncpasswd", "hospes guests have no framebuffer"},
        {"vfb", "hospes guests have no framebuffer"},
        {"sdl", "hospes guests have no framebuffer"},
        {"keymap", "hospes guests have no framebuffer"},
        {"seclabel", "hospes has no XSM labels"},
        {"init_seclabel", "hospes has no XSM labels"},
        {"max_grant_frames", "hospes guests use virtio, not grant tables"},
        {"max_maptrack_frames", "hospes guests use virtio, not grant tables"},
        {"max_grant_version", "hospes guests use virtio, not grant tables"},
        {"max_event_channels", "hospes guests use virtio, not event channels"},
        {"nomigrate", "migration is not built yet"},
        {"localtime", "the guest's clock is the host's UTC"},
        {"on_watchdog", "hospes has no watchdog device"},
        {"on_soft_reset", "hospes guests have no soft reset"},
        {"vpmu", "no virtual PMU is offered"},
        {"device_model_version", "hospes has no device model process"},
        {"device_model_override", "hospes has no device model process"},
        {"xen_platform_pci", "hospes has no Xen platform device"},
        {"acpi", "hospes always offers ACPI (for the power button)"},
        {"apic", "hospes always offers a local APIC"},
        {"pae", "64-bit guests always have PAE"},
        {"hap", "hardware paging is always on"},
    };
    return keys;
}

const std::map<std::string_view, DomainAction>& actions() {
    static const std::map<std::string_view, DomainAction> names = {
        {"destroy", DomainAction::Destroy},
        {"restart", DomainAction::Restart},
        {"rename-restart", DomainAction::RenameRestart},
        {"preserve", DomainAction::Preserve},
        {"coredump-destroy", DomainAction::CoredumpDestroy},
        {"coredump-restart", DomainAction::CoredumpRestart},
    };
    return names;
}

Result<void> check_cpulist(std::string_view list) {
    auto cpus = parse_cpulist(list, kMaxCpus);
    if (!cpus) return std::unexpected(cpus.error());
    return {};
}

class Reader {
public:
    explicit Reader(const XlConfig& config) : config_(config) {}

    template <class... Args>
    std::unexpected<Error> error(const XlSetting& setting, fmt::format_string<Args...> format, Args&&... args) const {
        return bad_input("{}:{}: {}: {}", config_.file, setting.line, setting.key,
                         fmt::format(format, std::forward<Args>(args)...));
    }
    Result<std::string> string(const XlSetting& setting) const {
        if (setting.value.kind != XlValue::Kind::String) return error(setting, "expected a string in quotes");
        return setting.value.text;
    }
    Result<uint64_t> number(const XlSetting& setting, uint64_t min, uint64_t max) const {
        if (setting.value.kind != XlValue::Kind::Number) return error(setting, "expected a number");
        auto n = xl_number(setting.value.text);
        if (!n || *n < min || *n > max) return error(setting, "{} is not a number from {} to {}", setting.value.text, min, max);
        return *n;
    }
    // A list of strings (a lone string is taken as a list of one).
    Result<std::vector<std::string>> strings(const XlSetting& setting) const {
        if (setting.value.kind == XlValue::Kind::String) return std::vector<std::string>{setting.value.text};
        if (setting.value.kind != XlValue::Kind::List) return error(setting, "expected a [list] of strings");
        std::vector<std::string> out;
        for (const auto& item : setting.value.items) {
            if (item.kind != XlValue::Kind::String) return error(setting, "expected a [list] of strings");
            out.push_back(item.text);
        }
        return out;
    }

private:
    const XlConfig& config_;
};

}  // namespace

std::string_view action_name(DomainAction action) {
    for (const auto& [name, value] : actions())
        if (value == action) return name;
    return "destroy";
}

std::optional<DomainAction> action_from_name(std::string_view name) {
    auto found = actions().find(name);
    if (found == actions().end()) return std::nullopt;
    return found->second;
}

Result<std::vector<unsigned>> parse_cpulist(std::string_view list, unsigned cpu_count) {
    if (trim(list).empty()) return bad_input("an empty CPU list");
    std::vector<bool> chosen(cpu_count, false);
    size_t start = 0;
    while (start <= list.size()) {
        size_t comma = std::min(list.find(',', start), list.size());
        auto term = trim(list.substr(start, comma - start));
        start = comma + 1;
        bool remove = term.starts_with('^');
        if (remove) term.remove_prefix(1);
        unsigned first = 0, last = cpu_count - 1;
        if (term != "all") {
            if (term.starts_with("node") || term.starts_with("nodes"))
                return bad_input("'{}': NUMA node terms are not supported; give CPU numbers", term);
            auto dash = term.find('-');
            auto from = decimal(term.substr(0, dash));
            auto to = dash == std::string_view::npos ? from : decimal(term.substr(dash + 1));
            if (!from || !to || *to < *from || *to > kMaxCpus - 1)
                return bad_input("'{}' is not a CPU, a range of CPUs like 2-5, ^N or all", term);
            if (*to >= cpu_count) return bad_input("'{}': this host has CPUs 0 to {}", term, cpu_count - 1);
            first = static_cast<unsigned>(*from);
            last = static_cast<unsigned>(*to);
        }
        for (unsigned cpu = first; cpu <= last; ++cpu) chosen[cpu] = !remove;
    }
    std::vector<unsigned> cpus;
    for (unsigned cpu = 0; cpu < cpu_count; ++cpu)
        if (chosen[cpu]) cpus.push_back(cpu);
    if (cpus.empty()) return bad_input("'{}' leaves no CPU", list);
    return cpus;
}

Result<unsigned> vdev_index(std::string_view vdev) {
    std::string_view letters;
    if (vdev.starts_with("xvd"))
        letters = vdev.substr(3);
    else if (vdev.starts_with("sd") || vdev.starts_with("hd") || vdev.starts_with("vd"))
        letters = vdev.substr(2);
    if (letters.empty() || letters.size() > 3 || !std::all_of(letters.begin(), letters.end(), [](char c) {
            return c >= 'a' && c <= 'z';
        }))
        return bad_input("'{}' is not a disk name like xvda, sdb or hdc (partitions are not given to guests)", vdev);
    if (vdev.starts_with("hd") && letters.size() > 1) return bad_input("'{}': IDE names go from hda to hdz", vdev);
    // Bijective base 26: a..z, aa..zz, aaa..
    unsigned index = 0;
    for (char c : letters) index = index * 26 + static_cast<unsigned>(c - 'a' + 1);
    return index - 1;
}

namespace {

Result<DomainDisk> disk_spec(std::string_view spec, std::vector<std::string>& warnings) {
    DomainDisk disk;
    bool target_set = false, format_set = false, vdev_set = false, access_set = false, prefix = false;
    bool access_given = false;  // a value, not an empty positional
    auto fail = [&](std::string_view what) { return bad_input("disk '{}': {}", spec, what); };
    auto set_access = [&](std::string_view value) -> bool {
        if (value == "ro" || value == "r") disk.read_only = true;
        else if (value == "rw" || value == "w") disk.read_only = false;
        else return false;
        access_set = access_given = true;
        return true;
    };
    auto set_format = [&](std::string_view value) -> Result<void> {
        format_set = true;
        if (value.empty() || value == "raw") return {};
        if (value == "qcow" || value == "qcow2" || value == "vhd" || value == "qed")
            return bad_input("disk '{}': format {} is not supported: hospes serves raw images and block devices", spec,
                             value);
        return bad_input("disk '{}': unknown format '{}' (raw, qcow, qcow2, vhd or qed)", spec, value);
    };
    auto set_vdev = [&](std::string_view value) -> Result<void> {
        vdev_set = true;
        if (value.ends_with(":cdrom")) {
            disk.cdrom = true;
            value.remove_suffix(6);
        } else if (value.ends_with(":disk")) {
            value.remove_suffix(5);
        }
        if (auto index = vdev_index(value); !index) return bad_input("disk '{}': {}", spec, index.error().message);
        disk.vdev = std::string(value);
        return {};
    };
    std::string_view rest = spec;
    while (!rest.empty()) {
        rest = trim(rest);
        // target= takes the rest of the spec, commas and all.
        if (rest.starts_with("target=")) {
            disk.target = std::string(rest.substr(7));
            target_set = true;
            break;
        }
        // Deprecated prefixes (xl-disk-configuration(5)), on the target.
        if (!target_set) {
            bool stripped = false;
            for (std::string_view p : {"tapdisk:", "tap2:", "tap:", "aio:", "ioemu:", "file:", "phy:"})
                if (rest.starts_with(p)) {
                    rest.remove_prefix(p.size());
                    prefix = stripped = true;
                    break;
                }
            for (std::string_view p : {"raw:", "qcow:", "qcow2:", "vhd:"})
                if (!stripped && rest.starts_with(p)) {
                    if (auto r = set_format(p.substr(0, p.size() - 1)); !r) return std::unexpected(r.error());
                    rest.remove_prefix(p.size());
                    prefix = stripped = true;
                }
            for (std::string_view p : {"iscsi:", "nbd:", "enbd:", "drbd:"})
                if (!stripped && rest.starts_with(p))
                    return fail(fmt::format("block scripts ({}) are not supported: give the block device's path",
                                            p.substr(0, p.size() - 1)));
            if (stripped) continue;
        }
        size_t comma = rest.find(',');
        auto part = trim(rest.substr(0, comma));
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
        auto equals = part.find('=');
        if (equals != std::string_view::npos) {
            auto key = part.substr(0, equals), value = part.substr(equals + 1);
            if (key == "format") {
                if (auto r = set_format(value); !r) return std::unexpected(r.error());
            } else if (key == "vdev") {
                if (auto r = set_vdev(value); !r) return std::unexpected(r.error());
            } else if (key == "access") {
                if (!set_access(value)) return fail(fmt::format("access '{}' is not ro, r, rw or w", value));
            } else if (key == "devtype") {
                if (value != "cdrom" && value != "disk") return fail(fmt::format("devtype '{}' is not cdrom or disk", value));
                disk.cdrom = value == "cdrom";
            } else if (key == "script") {
                return fail("block scripts are not supported: give the block device's path");
            } else if (key == "backend" || key == "backendtype" || key == "specification") {
                warnings.push_back(fmt::format("disk '{}': {} ignored: hospes serves every disk over virtio", spec, key));
            } else {
                return fail(fmt::format("unknown parameter '{}'", key));
            }
            continue;
        }
        if (part == "cdrom") {
            disk.cdrom = true;
        } else if (part == "discard") {
            disk.discard = true;
        } else if (part == "no-discard") {
            disk.discard = false;
        } else if (part == "direct-io-safe" || part == "trusted" || part == "untrusted") {
            // Advice for Xen's back-ends: nothing to do here.
        } else if (part.empty()) {
            // An empty positional value: that parameter's default.
            if (!target_set) target_set = true;
            else if (!format_set && !prefix) format_set = true;
            else if (!vdev_set) return fail("an empty vdev");
            else access_set = true;
        } else if (!target_set) {
            disk.target = std::string(part);
            target_set = true;
        } else if (!format_set && !prefix) {
            if (auto r = set_format(part); !r) return std::unexpected(r.error());
        } else if (!vdev_set) {
            if (auto r = set_vdev(part); !r) return std::unexpected(r.error());
        } else if (!access_set) {
            if (!set_access(part)) return fail(fmt::format("access '{}' is not ro, r, rw or w", part));
        } else {
            return fail(fmt::format("too many positional parameters at '{}'", part));
        }
    }
    if (!vdev_set) return fail("no vdev (the guest's name for it: xvda, sdb, ...)");
    if (disk.target.empty()) return fail(disk.cdrom ? "an empty CD-ROM drive is not supported" : "no target (a path)");
    if (disk.target.front() != '/') disk.target = "/dev/" + disk.target;  // as xl does
    if (disk.cdrom) {
        if (access_given && !disk.read_only) return fail("a CD-ROM is read-only");
        disk.read_only = true;
    }
    return disk;
}

}  // namespace

Result<std::pair<uint64_t, uint64_t>> parse_vif_rate(std::string_view rate) {
    auto at = rate.find('@');
    auto amount = rate.substr(0, at);
    auto fail = [&](std::string_view what) {
        return bad_input("rate '{}': {} (RATE/s[@INTERVAL], RATE like 10Mb or 250KB, INTERVAL like 20ms)", rate, what);
    };
    if (!amount.ends_with("/s")) return fail("no '/s'");
    amount.remove_suffix(2);
    bool bits = false;
    if (amount.ends_with('b')) bits = true;
    else if (!amount.ends_with('B')) return fail("the rate ends in B (bytes) or b (bits)");
    amount.remove_suffix(1);
    uint64_t scale = 1;
    if (!amount.empty() && (amount.back() == 'K' || amount.back() == 'M' || amount.back() == 'G')) {
        scale = amount.back() == 'K' ? 1000 : amount.back() == 'M' ? 1000'000 : 1000'000'000;
        amount.remove_suffix(1);
    }
    auto n = decimal(amount);
    if (!n || *n == 0 || *n > UINT32_MAX) return fail("not a rate above 0");
    uint64_t bytes = *n * scale / (bits ? 8 : 1);
    uint64_t interval_us = 50'000;
    if (at != std::string_view::npos) {
        auto interval = rate.substr(at + 1);
        uint64_t unit = 1'000'000;
        if (interval.ends_with("ms")) {
            unit = 1000;
            interval.remove_suffix(2);
        } else if (interval.ends_with("us")) {
            unit = 1;
            interval.remove_suffix(2);
        } else if (interval.ends_with("s")) {
            interval.remove_suffix(1);
        }
        auto i = decimal(interval);
        if (!i || *i == 0 || *i > UINT32_MAX / unit) return fail("the interval is not a time above 0");
        interval_us = *i * unit;
    }
    return std::pair{bytes, bytes * interval_us / 1'000'000};
}

namespace {

Result<DomainVif> vif_spec(std::string_view spec, std::vector<std::string>& warnings) {
    DomainVif vif;
    auto fail = [&](const std::string& what) { return bad_input("vif '{}': {}", spec, what); };
    size_t start = 0;
    while (start < spec.size()) {
        size_t comma = std::min(spec.find(',', start), spec.size());
        auto part = trim(spec.substr(start, comma - start));
        start = comma + 1;
        if (part.empty()) continue;
        auto equals = part.find('=');
        if (equals == std::string_view::npos) return fail(fmt::format("'{}' is not key=value", part));
        auto key = part.substr(0, equals), value = part.substr(equals + 1);
        if (key == "mac") {
            auto mac = cli::parse_mac(value);
            if (!mac) return fail(mac.error().message);
            vif.mac = *mac;
        } else if (key == "bridge") {
            if (auto r = cli::check_interface_name(value); !r) return fail("bridge " + r.error().message);
            vif.bridge = std::string(value);
        } else if (key == "vifname") {
            if (auto r = cli::check_interface_name(value); !r) return fail("vifname " + r.error().message);
            vif.vifname = std::string(value);
        } else if (key == "ip") {
            // One address or several separated by spaces (as vif-bridge reads them).
            size_t s = 0;
            while (s < value.size()) {
                size_t space = std::min(value.find(' ', s), value.size());
                auto address = value.substr(s, space - s);
                s = space + 1;
                if (address.empty()) continue;
                unsigned char buffer[16];
                std::string text(address);
                if (::inet_pton(AF_INET, text.c_str(), buffer) != 1 && ::inet_pton(AF_INET6, text.c_str(), buffer) != 1)
                    return fail(fmt::format("'{}' is not an IPv4 or IPv6 address", address));
                vif.ips.push_back(text);
            }
        } else if (key == "rate") {
            auto rate = parse_vif_rate(value);
            if (!rate) return fail(rate.error().message);
            vif.rate_bytes_per_second = rate->first;
            vif.rate_burst_bytes = rate->second;
        } else if (key == "mtu") {
            auto mtu = decimal(value);
            if (!mtu || *mtu < 68 || *mtu > 65535) return fail(fmt::format("mtu '{}' is not from 68 to 65535", value));
            vif.mtu = static_cast<unsigned>(*mtu);
        } else if (key == "script") {
            vif.script = std::string(value);
            warnings.push_back(fmt::format("vif '{}': script ignored: hospes attaches cards itself", spec));
        } else if (key == "model" || key == "type" || key == "backend" || key == "gatewaydev" || key == "netdev" ||
                   key == "devid") {
            warnings.push_back(fmt::format("vif '{}': {} ignored: every card is virtio-net", spec, key));
        } else {
            return fail(fmt::format("unknown key '{}'", key));
        }
    }
    return vif;
}

// Adds a parsed disk or vif to its list, or passes its error on.
template <class T>
Result<void> append(std::vector<T>& list, Result<T> item) {
    if (!item) return std::unexpected(item.error());
    list.push_back(std::move(*item));
    return {};
}

Result<DomainConfig> read_domain(const XlConfig& config) {
    DomainConfig domain;
    Reader read(config);
    const XlSetting* memory = nullptr;
    const XlSetting* maxmem = nullptr;
    const XlSetting* maxvcpus = nullptr;
    std::string root, extra;
    bool cmdline_given = false;
    for (const auto& s : config.settings) {
        const auto& key = s.key;
        if (key == "name") {
            auto v = read.string(s);
            if (!v) return std::unexpected(v.error());
            if (v->empty() || v->size() > 64 || v->find_first_of("/ \t\n") != std::string::npos || (*v)[0] == '-')
                return read.error(s, "'{}' is not a domain name (1 to 64 characters, no '/' or spaces)", *v);
            domain.name = *v;
        } else if (key == "type") {
            auto v = read.string(s);
            if (!v) return std::unexpected(v.error());
            if (*v == "hvm") return read.error(s, "HVM guests are not supported: hospes boots kernels as PV or PVH");
            if (*v != "pv" && *v != "pvh") return read.error(s, "'{}' is not pv, pvh or hvm", *v);
            domain.type = *v;
        } else if (key == "memory") {
            auto n = read.number(s, 4, 1 << 20);
            if (!n) return std::unexpected(n.error());
            domain.memory_mib = *n;
            memory = &s;
        } else if (key == "maxmem") {
            auto n = read.number(s, 4, 1 << 20);
            if (!n) return std::unexpected(n.error());
            domain.maxmem_mib = *n;
            maxmem = &s;
        } else if (key == "vcpus" || key == "maxvcpus") {
            auto n = read.number(s, 1, 288);
            if (!n) return std::unexpected(n.error());
            (key == "vcpus" ? domain.vcpus : domain.maxvcpus) = static_cast<unsigned>(*n);
            if (key == "maxvcpus") maxvcpus = &s;
        } else if (key == "cpus") {
            auto v = read.strings(s);
            if (!v) return std::unexpected(v.error());
            for (const auto& list : *v)
                if (auto r = check_cpulist(list); !r) return read.error(s, "{}", r.error().message);
            domain.cpus = *v;
        } else if (key == "cpu_weight") {
            auto n = read.number(s, 1, 65535);
            if (!n) return std::unexpected(n.error());
            domain.cpu_weight = static_cast<unsigned>(*n);
        } else if (key == "cap" || key == "cpu_cap") {
            auto n = read.number(s, 0, 100 * 288);
            if (!n) return std::unexpected(n.error());
            domain.cpu_cap = static_cast<unsigned>(*n);
        } else if (key == "uuid") {
            auto v = read.string(s);
            if (!v) return std::unexpected(v.error());
            bool ok = v->size() == 36;
            for (size_t i = 0; ok && i < v->size(); ++i)
                ok = (i == 8 || i == 13 || i == 18 || i == 23) ? (*v)[i] == '-' : std::isxdigit(static_cast<unsigned char>((*v)[i])) != 0;
            if (!ok) return read.error(s, "'{}' is not a UUID like 4f6c6d3a-8a0e-4d38-9c1f-2b1f5f0e7a11", *v);
            domain.uuid = *v;
        } else if (key == "kernel" || key == "ramdisk" || key == "cmdline" || key == "root" || key == "extra") {
            auto v = read.string(s);
            if (!v) return std::unexpected(v.error());
            if (key == "kernel") domain.kernel = *v;
            else if (key == "ramdisk") domain.ramdisk = *v;
            else if (key == "root") root = *v;
            else if (key == "extra") extra = *v;
            else {
                domain.cmdline = *v;
                cmdline_given = true;
            }
        } else if (key == "on_poweroff" || key == "on_reboot" || key == "on_crash") {
            auto v = read.string(s);
            if (!v) return std::unexpected(v.error());
            auto found = actions().find(*v);
            if (found == actions().end())
                return read.error(s, "'{}' is not destroy, restart, rename-restart, preserve, coredump-destroy or "
                                     "coredump-restart", *v);
            (key == "on_poweroff" ? domain.on_poweroff : key == "on_reboot" ? domain.on_reboot : domain.on_crash) =
                found->second;
        } else if (key == "disk" || key == "vif") {
            auto v = read.strings(s);
            if (!v) return std::unexpected(v.error());
            for (const auto& spec : *v) {
                std::vector<std::string> notes;
                Result<void> added = key == "disk" ? append(domain.disks, disk_spec(spec, notes))
                                                   : append(domain.vifs, vif_spec(spec, notes));
                if (!added) return read.error(s, "{}", added.error().message);
                for (auto& note : notes) domain.warnings.push_back(fmt::format("{}:{}: {}", config.file, s.line, note));
            }
        } else if (key == "serial") {
            auto v = read.strings(s);
            if (!v) return std::unexpected(v.error());
            if (*v != std::vector<std::string>{"pty"})
                domain.warnings.push_back(fmt::format("{}:{}: serial: only \"pty\" is offered (the console); '{}' ignored",
                                                      config.file, s.line, fmt::join(*v, ",")));
        } else if (key == "firmware") {
            return read.error(s, "hospes boots kernel= directly, without firmware (pvgrub, bios, uefi)");
        } else if (key == "pci" || key == "dtdev" || key == "ioports" || key == "iomem" || key == "irqs" ||
                   key == "usbdev" || key == "usbctrl") {
            return read.error(s, "device passthrough is not supported");
        } else if (auto ignored = ignored_keys().find(key); ignored != ignored_keys().end()) {
            domain.warnings.push_back(fmt::format("{}:{}: '{}' ignored: {}", config.file, s.line, key, ignored->second));
        } else {
            domain.warnings.push_back(fmt::format("{}:{}: unknown key '{}' ignored", config.file, s.line, key));
        }
    }
    if (domain.name.empty()) return bad_input("{}: no name= (every domain needs one)", config.file);
    if (domain.kernel.empty())
        return bad_input("{}: no kernel= (hospes boots the kernel directly; bootloaders are not run)", config.file);
    if (!maxmem) domain.maxmem_mib = domain.memory_mib;
    if (domain.maxmem_mib < domain.memory_mib)
        return bad_input("{}:{}: maxmem: {} MiB is less than memory= ({} MiB)", config.file,
                         maxmem ? maxmem->line : memory->line, domain.maxmem_mib, domain.memory_mib);
    if (!maxvcpus) domain.maxvcpus = domain.vcpus;
    if (domain.maxvcpus < domain.vcpus)
        return bad_input("{}:{}: maxvcpus: {} is less than vcpus= ({})", config.file, maxvcpus->line, domain.maxvcpus,
                         domain.vcpus);
    if (domain.cpus.size() > 1 && domain.cpus.size() != domain.maxvcpus)
        return bad_input("{}: cpus: {} lists for {} vCPUs (give one list for all, or one per vCPU)", config.file,
                         domain.cpus.size(), domain.maxvcpus);
    if (!cmdline_given) {
        if (!root.empty()) domain.cmdline = "root=" + root;
        if (!extra.empty()) domain.cmdline += (domain.cmdline.empty() ? "" : " ") + extra;
    }
    // The guest sees its disks as vda, vdb, ... in the order of their vdevs.
    std::vector<std::pair<unsigned, size_t>> order;
    for (size_t i = 0; i < domain.disks.size(); ++i) order.emplace_back(*vdev_index(domain.disks[i].vdev), i);
    std::sort(order.begin(), order.end());
    std::vector<DomainDisk> sorted;
    for (size_t i = 0; i < order.size(); ++i) {
        if (i > 0 && order[i].first == order[i - 1].first)
            return bad_input("{}: disk: {} and {} are the same drive", config.file, domain.disks[order[i - 1].second].vdev,
                             domain.disks[order[i].second].vdev);
        auto disk = domain.disks[order[i].second];
        // vda..vdz, then vdaa..: the names Linux's virtio_blk gives in probe order.
        disk.guest_device = "vd";
        if (i >= 26) disk.guest_device += static_cast<char>('a' + i / 26 - 1);
        disk.guest_device += static_cast<char>('a' + i % 26);
        sorted.push_back(std::move(disk));
    }
    domain.disks = std::move(sorted);
    return domain;
}

}  // namespace

Result<DomainDisk> parse_disk_spec(std::string_view spec, std::vector<std::string>& warnings) {
    size_t from = warnings.size();
    auto disk = one_line(disk_spec(spec, warnings));
    one_line(warnings, from);
    return disk;
}

Result<DomainVif> parse_vif_spec(std::string_view spec, std::vector<std::string>& warnings) {
    size_t from = warnings.size();
    auto vif = one_line(vif_spec(spec, warnings));
    one_line(warnings, from);
    return vif;
}

Result<DomainConfig> domain_from_xl(const XlConfig& config) {
    auto result = one_line(read_domain(config));
    if (result) one_line(result->warnings, 0);
    if (result)
        if (auto checked = check_domain(*result); !checked)
            return bad_input("{}: {}", config.file, checked.error().message);
    return result;
}

Result<void> check_domain(const DomainConfig& d) {
    // Text the user's words travel in: quoted in errors, never printed raw.
    auto clean = [](std::string_view what, const std::string& text, bool path) -> Result<void> {
        for (char c : text) {
            if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
                return bad_input("{} {}: control characters (NUL, newline) are not allowed", what, escaped(text));
            if (path && c == ',') return bad_input("{} {}: a path with a comma is not allowed", what, escaped(text));
        }
        return {};
    };
    if (auto r = clean("name", d.name, false); !r) return r;
    if (auto r = clean("uuid", d.uuid, false); !r) return r;
    if (auto r = clean("kernel", d.kernel, true); !r) return r;
    if (auto r = clean("ramdisk", d.ramdisk, true); !r) return r;
    if (auto r = clean("cmdline", d.cmdline, false); !r) return r;
    if (d.maxmem_mib < d.memory_mib)
        return bad_input("maxmem {} MiB is less than memory {} MiB", d.maxmem_mib, d.memory_mib);
    if (d.maxvcpus < d.vcpus) return bad_input("maxvcpus {} is less than vcpus {}", d.maxvcpus, d.vcpus);
    if (d.cpu_weight == 0 || d.cpu_weight > 65535) return bad_input("cpu_weight {} is not from 1 to 65535", d.cpu_weight);
    if (d.cpus.size() > 1 && d.cpus.size() != d.maxvcpus)
        return bad_input("cpus: {} lists for {} vCPUs (give one list for all, or one per vCPU)", d.cpus.size(),
                         d.maxvcpus);
    for (const auto& list : d.cpus)
        if (auto r = check_cpulist(list); !r) return bad_input("cpus {}: {}", escaped(list), r.error().message);
    std::vector<unsigned> drives;
    for (const auto& disk : d.disks) {
        if (auto r = clean("disk target", disk.target, true); !r) return r;
        if (disk.target.empty()) return bad_input("a disk has no target");
        auto index = vdev_index(disk.vdev);
        if (!index) return bad_input("disk {}: {}", escaped(disk.target), index.error().message);
        if (std::find(drives.begin(), drives.end(), *index) != drives.end())
            return bad_input("disk {}: {} is a drive named twice", escaped(disk.target), disk.vdev);
        drives.push_back(*index);
        if (disk.format != "raw") return bad_input("disk {}: format {} is not supported", escaped(disk.target), escaped(disk.format));
    }
    for (const auto& vif : d.vifs) {
        for (const auto* name : {&vif.bridge, &vif.vifname})
            if (!name->empty())
                if (auto r = cli::check_interface_name(*name); !r) return bad_input("vif: {}", r.error().message);
        for (const auto& ip : vif.ips) {
            unsigned char buffer[16];
            if (::inet_pton(AF_INET, ip.c_str(), buffer) != 1 && ::inet_pton(AF_INET6, ip.c_str(), buffer) != 1)
                return bad_input("vif: {} is not an IPv4 or IPv6 address", escaped(ip));
        }
        if (vif.mtu != 0 && (vif.mtu < 68 || vif.mtu > 65535)) return bad_input("vif: mtu {} is not from 68 to 65535", vif.mtu);
    }
    return {};
}

}  // namespace hospes::toolstack
