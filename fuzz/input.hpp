// The fuzz targets' reader of their input: little-endian numbers and byte
// strings taken from the front; past the end every read gives zeros (or
// fewer bytes), so a script cut short still runs to its end.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace hospes::fuzz {

class Input {
public:
    Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
    bool empty() const { return size_ == 0; }
    uint8_t u8() { return size_ ? (--size_, *data_++) : 0; }
    uint16_t u16() { return static_cast<uint16_t>(u8() | (u8() << 8)); }
    uint32_t u32() { return u16() | uint32_t{u16()} << 16; }
    std::vector<uint8_t> bytes(size_t n) {
        n = std::min(n, size_);
        std::vector<uint8_t> out(data_, data_ + n);
        data_ += n;
        size_ -= n;
        return out;
    }
    std::string text(size_t n) {
        auto b = bytes(n);
        return {b.begin(), b.end()};
    }

private:
    const uint8_t* data_;
    size_t size_;
};

}  // namespace hospes::fuzz
