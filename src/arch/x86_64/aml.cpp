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

}  // namespace

std::vector<uint8_t> virtio_mmio_device_aml(uint8_t index, uint32_t base, uint32_t size, uint32_t gsi) {
    std::vector<uint8_t> body;
    const char hex[] = "0123456789ABCDEF";
    body.insert(body.end(), {'V', 'R', static_cast<uint8_t>(hex[index >> 4]), static_cast<uint8_t>(hex[index & 0xf])});

    name(body, "_HID");
    body.push_back(kStringPrefix);
    for (char c : std::string("LNRO0005")) body.push_back(static_cast<uint8_t>(c));
    body.push_back(0);

    name(body, "_UID");
    body.push_back(kBytePrefix);
    body.push_back(index);

    // Resource template (6.4): Memory32Fixed, Extended Interrupt, End tag.
    std::vector<uint8_t> resources{0x86, 0x09, 0x00, 0x01};  // read-write
    append_u32(resources, base);
    append_u32(resources, size);
    resources.insert(resources.end(), {0x89, 0x06, 0x00, 0x03, 0x01});  // consumer, edge, active high; 1 interrupt
    append_u32(resources, gsi);
    resources.insert(resources.end(), {0x79, 0x00});
    std::vector<uint8_t> buffer{kBytePrefix, static_cast<uint8_t>(resources.size())};
    buffer.insert(buffer.end(), resources.begin(), resources.end());
    name(body, "_CRS");
    body.push_back(kBufferOp);
    auto buffer_package = package(buffer);
    body.insert(body.end(), buffer_package.begin(), buffer_package.end());

    std::vector<uint8_t> device{kExtOpPrefix, kDeviceOp};
    auto device_package = package(body);
    device.insert(device.end(), device_package.begin(), device_package.end());
    return device;
}

}  // namespace hospes::x86
