#include "arch/x86_64/aml.hpp"

#include <stdexcept>
#include <string>

namespace hospes::x86 {

namespace {

constexpr uint8_t kNameOp = 0x08, kBytePrefix = 0x0a, kStringPrefix = 0x0d, kBufferOp = 0x11, kExtOpPrefix = 0x5b,
                  kDeviceOp = 0x82;

void append_u32(std::vector<uint8_t>& out, uint32_t value) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

// PkgLength (20.2.4): the length of the package including its own encoding.
std::vector<uint8_t> package(const std::vector<uint8_t>& body) {
    size_t length = body.size() + 1;
    std::vector<uint8_t> out;
    if (length < 0x40) {
        out.push_back(static_cast<uint8_t>(length));
    } else {
        length += 1;  // two-byte encoding covers up to 4095 bytes
        out.push_back(static_cast<uint8_t>(0x40 | (length & 0xf)));
        out.push_back(static_cast<uint8_t>(length >> 4));
    }
    out.insert(out.end(), body.begin(), body.end());
    return out;
}

void name(std::vector<uint8_t>& out, const char (&name_seg)[5]) {
    out.push_back(kNameOp);
    out.insert(out.end(), name_seg, name_seg + 4);
}

void hid(std::vector<uint8_t>& out, const std::string& id) {
    name(out, "_HID");
    out.push_back(kStringPrefix);
    for (char c : id) out.push_back(static_cast<uint8_t>(c));
    out.push_back(0);
}

// Name (_CRS, Buffer () { resources..., End tag }).
void crs(std::vector<uint8_t>& out, std::vector<uint8_t> resources) {
    resources.insert(resources.end(), {0x79, 0x00});
    std::vector<uint8_t> buffer{kBytePrefix, static_cast<uint8_t>(resources.size())};
    buffer.insert(buffer.end(), resources.begin(), resources.end());
    name(out, "_CRS");
    out.push_back(kBufferOp);
    auto buffer_package = package(buffer);
    out.insert(out.end(), buffer_package.begin(), buffer_package.end());
}

// Device (NAME) { body }.
std::vector<uint8_t> device(const std::vector<uint8_t>& name_and_body) {
    std::vector<uint8_t> out{kExtOpPrefix, kDeviceOp};
    auto device_package = package(name_and_body);
    out.insert(out.end(), device_package.begin(), device_package.end());
    return out;
}

}  // namespace

std::vector<uint8_t> virtio_mmio_device_aml(uint8_t index, uint32_t base, uint32_t size, uint32_t gsi) {
    std::vector<uint8_t> body;
    const char hex[] = "0123456789ABCDEF";
    body.insert(body.end(), {'V', 'R', static_cast<uint8_t>(hex[index >> 4]), static_cast<uint8_t>(hex[index & 0xf])});

    hid(body, "LNRO0005");
    name(body, "_UID");
    body.push_back(kBytePrefix);
    body.push_back(index);

    // Resource template (6.4): Memory32Fixed, Extended Interrupt.
    std::vector<uint8_t> resources{0x86, 0x09, 0x00, 0x01};  // read-write
    append_u32(resources, base);
    append_u32(resources, size);
    resources.insert(resources.end(), {0x89, 0x06, 0x00, 0x03, 0x01});  // consumer, edge, active high; 1 interrupt
    append_u32(resources, gsi);
    crs(body, resources);
    return device(body);
}

std::vector<uint8_t> pvpanic_device_aml(uint16_t port) {
    std::vector<uint8_t> body{'P', 'E', 'V', 'T'};
    hid(body, "QEMU0001");
    // I/O port descriptor (6.4.2.5): 16-bit decode, minimum = maximum = port,
    // alignment 1, length 1.
    auto lo = static_cast<uint8_t>(port), hi = static_cast<uint8_t>(port >> 8);
    crs(body, {0x47, 0x01, lo, hi, lo, hi, 0x01, 0x01});
    return device(body);
}

}  // namespace hospes::x86
