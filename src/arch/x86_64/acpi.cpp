#include "arch/x86_64/acpi.hpp"

#include <cstring>

#include "arch/x86_64/layout.hpp"
#include "arch/x86_64/mptable.hpp"

namespace hospes::x86 {

namespace {

#pragma pack(push, 1)
struct Rsdp {  // 5.2.5.3
    char signature[8];  // "RSD PTR "
    uint8_t checksum;   // over the first 20 bytes
    char oem_id[6];
    uint8_t revision;   // 2: ACPI 2.0+, has the XSDT
    uint32_t rsdt_address;
    uint32_t length;
    uint64_t xsdt_address;
    uint8_t extended_checksum;
    uint8_t reserved[3];
};
static_assert(sizeof(Rsdp) == 36);

struct SdtHeader {  // 5.2.6
    char signature[4];
    uint32_t length;
    uint8_t revision;
    uint8_t checksum;
    char oem_id[6];
    char oem_table_id[8];
    uint32_t oem_revision;
    char creator_id[4];
    uint32_t creator_revision;
};
static_assert(sizeof(SdtHeader) == 36);

struct Gas {  // 5.2.3.2 Generic Address Structure
    uint8_t space_id;  // 1: system I/O
    uint8_t bit_width;
    uint8_t bit_offset;
    uint8_t access_size;  // 1 byte, 2 word, 3 dword
    uint64_t address;
};
static_assert(sizeof(Gas) == 12);

struct Fadt {  // 5.2.9, revision 6
    SdtHeader header;
    uint32_t firmware_ctrl;
    uint32_t dsdt;
    uint8_t reserved0;
    uint8_t preferred_pm_profile;
    uint16_t sci_int;
    uint32_t smi_cmd;  // 0: the machine is always in ACPI mode
    uint8_t acpi_enable, acpi_disable, s4bios_req, pstate_cnt;
    uint32_t pm1a_evt_blk, pm1b_evt_blk, pm1a_cnt_blk, pm1b_cnt_blk, pm2_cnt_blk, pm_tmr_blk, gpe0_blk, gpe1_blk;
    uint8_t pm1_evt_len, pm1_cnt_len, pm2_cnt_len, pm_tmr_len, gpe0_blk_len, gpe1_blk_len, gpe1_base, cst_cnt;
    uint16_t p_lvl2_lat, p_lvl3_lat, flush_size, flush_stride;
    uint8_t duty_offset, duty_width, day_alrm, mon_alrm, century;
    uint16_t iapc_boot_arch;
    uint8_t reserved1;
    uint32_t flags;
    Gas reset_reg;
    uint8_t reset_value;
    uint16_t arm_boot_arch;
    uint8_t minor_version;
    uint64_t x_firmware_ctrl;
    uint64_t x_dsdt;
    Gas x_pm1a_evt_blk, x_pm1b_evt_blk, x_pm1a_cnt_blk, x_pm1b_cnt_blk, x_pm2_cnt_blk, x_pm_tmr_blk, x_gpe0_blk,
        x_gpe1_blk, sleep_control_reg, sleep_status_reg;
    uint64_t hypervisor_vendor_id;
};
static_assert(sizeof(Fadt) == 276);
static_assert(offsetof(Fadt, iapc_boot_arch) == 109 && offsetof(Fadt, x_dsdt) == 140);

struct Facs {  // 5.2.10
    char signature[4];
    uint32_t length;
    uint32_t hardware_signature;
    uint32_t firmware_waking_vector;
    uint32_t global_lock;
    uint32_t flags;
    uint64_t x_firmware_waking_vector;
    uint8_t version;
    uint8_t reserved[3];
    uint32_t ospm_flags;
    uint8_t reserved2[24];
};
static_assert(sizeof(Facs) == 64);

struct MadtHeader {  // 5.2.12
    SdtHeader header;
    uint32_t lapic_address;
    uint32_t flags;  // bit 0: PC-AT compatible 8259s present
};

struct MadtLapic {  // type 0
    uint8_t type, length, processor_uid, apic_id;
    uint32_t flags;  // bit 0: enabled
};
struct MadtIoApic {  // type 1
    uint8_t type, length, id, reserved;
    uint32_t address;
    uint32_t gsi_base;
};
struct MadtSourceOverride {  // type 2
    uint8_t type, length, bus, source;
    uint32_t gsi;
    uint16_t flags;
};
struct MadtLapicNmi {  // type 4
    uint8_t type, length, processor_uid;
    uint16_t flags;
    uint8_t lint;
};
static_assert(sizeof(MadtLapic) == 8 && sizeof(MadtIoApic) == 12 && sizeof(MadtSourceOverride) == 10 &&
              sizeof(MadtLapicNmi) == 6);
#pragma pack(pop)

constexpr uint32_t kFadtWbinvd = 1u << 0, kFadtNoSleepButton = 1u << 5, kFadtResetRegSupported = 1u << 10;
constexpr uint16_t kBootArchLegacyDevices = 1u << 0, kBootArch8042 = 1u << 1, kBootArchNoVga = 1u << 2,
                   kBootArchNoMsi = 1u << 3;
constexpr uint16_t kLevelActiveHigh = 0x000d;  // polarity 01 (high), trigger 11 (level)

template <class T>
void fill_header(T& table, const char* signature, uint8_t revision) {
    SdtHeader& h = table.header;
    std::memcpy(h.signature, signature, 4);
    h.length = sizeof(T);
    h.revision = revision;
    std::memcpy(h.oem_id, "HOSPES", 6);
    std::memcpy(h.oem_table_id, "HOSPESVM", 8);
    h.oem_revision = 1;
    std::memcpy(h.creator_id, "HOSP", 4);
    h.creator_revision = 1;
}

// Appends `bytes` at the 16-byte aligned end of `out`; returns its offset.
size_t place(std::vector<uint8_t>& out, const void* bytes, size_t size, size_t alignment = 16) {
    size_t offset = (out.size() + alignment - 1) / alignment * alignment;
    out.resize(offset + size);
    std::memcpy(out.data() + offset, bytes, size);
    return offset;
}

// Sets the checksum byte at `checksum_offset` so the `length` bytes at `offset` sum to zero.
void seal(std::vector<uint8_t>& out, size_t offset, size_t length, size_t checksum_offset) {
    out[offset + checksum_offset] = 0;
    out[offset + checksum_offset] = static_cast<uint8_t>(-byte_sum(out.data() + offset, length));
}

// AML: Name (_S5, Package () { 5, 0, 0, 0 }): the sleep type of "soft off".
constexpr uint8_t kS5Object[] = {0x08, '_', 'S', '5', '_', 0x12, 0x07, 0x04, 0x0a, kAcpiS5SleepType, 0x00, 0x00, 0x00};

std::vector<uint8_t> madt(uint32_t vcpus) {
    MadtHeader header{};
    fill_header(header, "APIC", 5);
    header.lapic_address = static_cast<uint32_t>(kLapicAddress);
    header.flags = 1;
    std::vector<uint8_t> bytes(sizeof(header));
    auto add = [&](const auto& entry) {
        auto raw = reinterpret_cast<const uint8_t*>(&entry);
        bytes.insert(bytes.end(), raw, raw + sizeof(entry));
    };
    for (uint32_t cpu = 0; cpu < vcpus; ++cpu)
        add(MadtLapic{0, sizeof(MadtLapic), static_cast<uint8_t>(cpu), static_cast<uint8_t>(cpu), 1});
    add(MadtIoApic{1, sizeof(MadtIoApic), static_cast<uint8_t>(vcpus), 0, static_cast<uint32_t>(kIoapicAddress), 0});
    add(MadtSourceOverride{2, sizeof(MadtSourceOverride), 0, kAcpiSciIrq, kAcpiSciIrq, kLevelActiveHigh});
    add(MadtLapicNmi{4, sizeof(MadtLapicNmi), 0xff, 0, 1});
    header.header.length = static_cast<uint32_t>(bytes.size());
    std::memcpy(bytes.data(), &header, sizeof(header));
    return bytes;
}

Fadt fadt(uint64_t facs, uint64_t dsdt) {
    Fadt f{};
    fill_header(f, "FACP", 6);
    f.firmware_ctrl = static_cast<uint32_t>(facs);
    f.dsdt = static_cast<uint32_t>(dsdt);
    f.x_dsdt = dsdt;
    f.sci_int = kAcpiSciIrq;
    f.pm1a_evt_blk = kAcpiPm1EventPort;
    f.pm1_evt_len = 4;
    f.pm1a_cnt_blk = kAcpiPm1ControlPort;
    f.pm1_cnt_len = 2;
    f.p_lvl2_lat = 101;   // > 100: no C2
    f.p_lvl3_lat = 1001;  // > 1000: no C3
    f.century = 0x32;     // the CMOS century register
    f.iapc_boot_arch = kBootArchLegacyDevices | kBootArch8042 | kBootArchNoVga | kBootArchNoMsi;
    // The power button is the fixed-feature one in PM1 (the control socket's
    // power-button presses it); there is no sleep button.
    f.flags = kFadtWbinvd | kFadtNoSleepButton | kFadtResetRegSupported;
    f.reset_reg = Gas{1, 8, 0, 1, kAcpiResetPort};
    f.reset_value = kAcpiResetValue;
    f.minor_version = 4;
    std::memcpy(&f.hypervisor_vendor_id, "HOSPES\0\0", 8);
    return f;
}

}  // namespace

Result<AcpiTables> build_acpi_tables(uint64_t address, uint32_t vcpus, std::span<const uint8_t> dsdt_body) {
    if (vcpus == 0 || vcpus > kMaxMpTableVcpus) return bad_input("{} vCPUs: ACPI tables announce 1 to {}", vcpus, kMaxMpTableVcpus);
    if (address % 16 != 0) return host_error("ACPI tables must be 16-byte aligned");

    std::vector<uint8_t> out;
    Rsdp rsdp{};
    size_t rsdp_at = place(out, &rsdp, sizeof(rsdp));

    // FACS: required by a FADT that is not hardware-reduced; 64-byte aligned.
    Facs facs{};
    std::memcpy(facs.signature, "FACS", 4);
    facs.length = sizeof(Facs);
    facs.version = 2;
    size_t facs_at = place(out, &facs, sizeof(facs), 64);

    struct {
        SdtHeader header;
    } dsdt_header{};
    fill_header(dsdt_header, "DSDT", 2);
    std::vector<uint8_t> dsdt(sizeof(SdtHeader));
    dsdt.insert(dsdt.end(), std::begin(kS5Object), std::end(kS5Object));
    dsdt.insert(dsdt.end(), dsdt_body.begin(), dsdt_body.end());
    dsdt_header.header.length = static_cast<uint32_t>(dsdt.size());
    std::memcpy(dsdt.data(), &dsdt_header, sizeof(SdtHeader));
    size_t dsdt_at = place(out, dsdt.data(), dsdt.size());
    seal(out, dsdt_at, dsdt.size(), offsetof(SdtHeader, checksum));

    Fadt fadt_table = fadt(address + facs_at, address + dsdt_at);
    size_t fadt_at = place(out, &fadt_table, sizeof(fadt_table));
    seal(out, fadt_at, sizeof(Fadt), offsetof(SdtHeader, checksum));

    auto madt_bytes = madt(vcpus);
    size_t madt_at = place(out, madt_bytes.data(), madt_bytes.size());
    seal(out, madt_at, madt_bytes.size(), offsetof(SdtHeader, checksum));

    struct {
        SdtHeader header;
        uint64_t entries[2];
    } __attribute__((packed)) xsdt{};
    fill_header(xsdt, "XSDT", 1);
    xsdt.entries[0] = address + fadt_at;
    xsdt.entries[1] = address + madt_at;
    size_t xsdt_at = place(out, &xsdt, sizeof(xsdt));
    seal(out, xsdt_at, sizeof(xsdt), offsetof(SdtHeader, checksum));

    std::memcpy(rsdp.signature, "RSD PTR ", 8);
    std::memcpy(rsdp.oem_id, "HOSPES", 6);
    rsdp.revision = 2;
    rsdp.length = sizeof(Rsdp);
    rsdp.xsdt_address = address + xsdt_at;
    std::memcpy(out.data() + rsdp_at, &rsdp, sizeof(rsdp));
    seal(out, rsdp_at, 20, offsetof(Rsdp, checksum));
    seal(out, rsdp_at, sizeof(Rsdp), offsetof(Rsdp, extended_checksum));
    return AcpiTables{address + rsdp_at, std::move(out)};
}

}  // namespace hospes::x86
