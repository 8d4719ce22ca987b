#include "arch/x86_64/mptable.hpp"

#include <cstring>

#include "arch/x86_64/layout.hpp"

namespace hospes::x86 {

namespace {

#pragma pack(push, 1)
struct MpFloatingPointer {   // MP spec 4.1
    char signature[4];       // "_MP_"
    uint32_t config_address;
    uint8_t length;          // in 16-byte units
    uint8_t spec_revision;
    uint8_t checksum;
    uint8_t features[5];     // feature 1 = 0: a configuration table is present
};
static_assert(sizeof(MpFloatingPointer) == 16);

struct MpConfigHeader {      // MP spec 4.2
    char signature[4];       // "PCMP"
    uint16_t base_length;
    uint8_t spec_revision;
    uint8_t checksum;
    char oem_id[8];
    char product_id[12];
    uint32_t oem_table;
    uint16_t oem_table_size;
    uint16_t entry_count;
    uint32_t lapic_address;
    uint16_t extended_length;
    uint8_t extended_checksum;
    uint8_t reserved;
};
static_assert(sizeof(MpConfigHeader) == 44);

struct MpProcessor {         // MP spec 4.3.1, entry type 0
    uint8_t type;
    uint8_t lapic_id;
    uint8_t lapic_version;
    uint8_t flags;           // bit 0 enabled, bit 1 bootstrap processor
    uint32_t signature;
    uint32_t feature_flags;
    uint32_t reserved[2];
};
static_assert(sizeof(MpProcessor) == 20);

struct MpBus {               // 4.3.2, type 1
    uint8_t type;
    uint8_t bus_id;
    char bus_type[6];
};
static_assert(sizeof(MpBus) == 8);

struct MpIoApic {            // 4.3.3, type 2
    uint8_t type;
    uint8_t id;
    uint8_t version;
    uint8_t flags;
    uint32_t address;
};
static_assert(sizeof(MpIoApic) == 8);

struct MpInterrupt {         // 4.3.4 (type 3, I/O) and 4.3.5 (type 4, local)
    uint8_t type;
    uint8_t interrupt_type;  // 0 INT, 1 NMI, 3 ExtINT
    uint16_t flags;          // 0: polarity and trigger conform to the bus
    uint8_t source_bus;
    uint8_t source_irq;
    uint8_t destination_id;
    uint8_t destination_pin;
};
static_assert(sizeof(MpInterrupt) == 8);
#pragma pack(pop)

constexpr uint8_t kEntryProcessor = 0, kEntryBus = 1, kEntryIoApic = 2, kEntryIoInterrupt = 3,
                  kEntryLocalInterrupt = 4;
constexpr uint8_t kInterruptInt = 0, kInterruptNmi = 1, kInterruptExtInt = 3;
constexpr uint8_t kLapicVersion = 0x14, kIoApicVersion = 0x11, kSpecRevision = 4;
constexpr uint32_t kIsaIrqs = 16;

template <class T>
void append(std::vector<uint8_t>& out, const T& entry) {
    auto bytes = reinterpret_cast<const uint8_t*>(&entry);
    out.insert(out.end(), bytes, bytes + sizeof(T));
}

}  // namespace

uint8_t byte_sum(const uint8_t* bytes, size_t size) {
    uint8_t sum = 0;
    for (size_t i = 0; i < size; ++i) sum = static_cast<uint8_t>(sum + bytes[i]);
    return sum;
}

Result<std::vector<uint8_t>> build_mp_table(uint64_t address, uint32_t vcpus) {
    if (vcpus == 0 || vcpus > kMaxMpTableVcpus)
        return bad_input("{} vCPUs: the MP table announces 1 to {}", vcpus, kMaxMpTableVcpus);
    const auto ioapic_id = static_cast<uint8_t>(vcpus);

    std::vector<uint8_t> entries;
    uint16_t count = 0;
    for (uint32_t cpu = 0; cpu < vcpus; ++cpu, ++count) {
        MpProcessor processor{};
        processor.type = kEntryProcessor;
        processor.lapic_id = static_cast<uint8_t>(cpu);
        processor.lapic_version = kLapicVersion;
        processor.flags = static_cast<uint8_t>(cpu == 0 ? 0x3 : 0x1);
        processor.signature = 0x600;        // family 6
        processor.feature_flags = 0x201;    // FPU and APIC
        append(entries, processor);
    }
    MpBus bus{kEntryBus, 0, {'I', 'S', 'A', ' ', ' ', ' '}};
    append(entries, bus);
    ++count;
    append(entries, MpIoApic{kEntryIoApic, ioapic_id, kIoApicVersion, 1, static_cast<uint32_t>(kIoapicAddress)});
    ++count;
    for (uint32_t irq = 0; irq < kIsaIrqs; ++irq, ++count) {
        append(entries, MpInterrupt{kEntryIoInterrupt, kInterruptInt, 0, 0, static_cast<uint8_t>(irq), ioapic_id,
                                    static_cast<uint8_t>(irq)});
    }
    // LINT0 takes the 8259's ExtINT, LINT1 NMIs, on every local APIC.
    append(entries, MpInterrupt{kEntryLocalInterrupt, kInterruptExtInt, 0, 0, 0, 0xff, 0});
    append(entries, MpInterrupt{kEntryLocalInterrupt, kInterruptNmi, 0, 0, 0, 0xff, 1});
    count += 2;

    MpConfigHeader header{};
    std::memcpy(header.signature, "PCMP", 4);
    header.base_length = static_cast<uint16_t>(sizeof(MpConfigHeader) + entries.size());
    header.spec_revision = kSpecRevision;
    std::memcpy(header.oem_id, "HOSPES  ", 8);
    std::memcpy(header.product_id, "VIRTUAL     ", 12);
    header.entry_count = count;
    header.lapic_address = static_cast<uint32_t>(kLapicAddress);

    MpFloatingPointer pointer{};
    std::memcpy(pointer.signature, "_MP_", 4);
    pointer.config_address = static_cast<uint32_t>(address + sizeof(MpFloatingPointer));
    pointer.length = 1;
    pointer.spec_revision = kSpecRevision;

    std::vector<uint8_t> table;
    append(table, pointer);
    append(table, header);
    table.insert(table.end(), entries.begin(), entries.end());
    // Each checksum makes its structure's bytes sum to zero.
    table[offsetof(MpFloatingPointer, checksum)] =
        static_cast<uint8_t>(-byte_sum(table.data(), sizeof(MpFloatingPointer)));
    uint8_t* config = table.data() + sizeof(MpFloatingPointer);
    config[offsetof(MpConfigHeader, checksum)] = static_cast<uint8_t>(-byte_sum(config, header.base_length));
    return table;
}

}  // namespace hospes::x86
