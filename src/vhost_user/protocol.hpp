// The vhost-user protocol's messages (QEMU's docs/interop/vhost-user.rst,
// "Message specification"): a 12-byte header, then a payload whose type the
// request decides, with file descriptors alongside (SCM_RIGHTS). Both the
// monitor (front-end) and the backends (back-end) use these types.
#pragma once

#include <cstdint>

namespace hospes::vhost_user {

// Front-end -> back-end requests (numbers from the specification).
enum class Request : uint32_t {
    GetFeatures = 1,
    SetFeatures = 2,
    SetOwner = 3,
    ResetOwner = 4,
    SetMemTable = 5,
    SetLogBase = 6,
    SetLogFd = 7,
    SetVringNum = 8,
    SetVringAddr = 9,
    SetVringBase = 10,
    GetVringBase = 11,
    SetVringKick = 12,
    SetVringCall = 13,
    SetVringErr = 14,
    GetProtocolFeatures = 15,
    SetProtocolFeatures = 16,
    GetQueueNum = 17,
    SetVringEnable = 18,
    SetBackendReqFd = 21,
    GetConfig = 24,
    SetConfig = 25,
    GetInflightFd = 31,
    SetInflightFd = 32,
    ResetDevice = 34,
    GetMaxMemSlots = 36,
};

// Protocol feature bits (GET/SET_PROTOCOL_FEATURES).
enum ProtocolFeature : uint64_t {
    kProtocolMq = 1ull << 0,
    kProtocolReplyAck = 1ull << 3,
    kProtocolConfig = 1ull << 9,
    kProtocolInflightShmfd = 1ull << 12,
    kProtocolResetDevice = 1ull << 13,
};

// The virtio feature bit that says protocol features exist.
inline constexpr uint64_t kFeatureProtocolFeatures = 1ull << 30;

struct Header {
    uint32_t request;
    uint32_t flags;
    uint32_t size;  // of the payload
};
static_assert(sizeof(Header) == 12);

inline constexpr uint32_t kVersion = 1;          // flags bits 0-1
inline constexpr uint32_t kFlagReply = 1u << 2;
inline constexpr uint32_t kFlagNeedReply = 1u << 3;

// The largest payload any message of ours carries: a memory table of
// kMaxMemoryRegions, or a config read of up to 256 bytes.
inline constexpr uint32_t kMaxPayload = 4096;
inline constexpr uint32_t kMaxMemoryRegions = 8;
inline constexpr uint32_t kMaxFds = 8;

struct VringState {  // SET_VRING_NUM, SET_VRING_BASE, GET_VRING_BASE, SET_VRING_ENABLE
    uint32_t index;
    uint32_t num;
};
static_assert(sizeof(VringState) == 8);

struct VringAddress {  // SET_VRING_ADDR: front-end virtual addresses
    uint32_t index;
    uint32_t flags;
    uint64_t descriptor;
    uint64_t used;
    uint64_t available;
    uint64_t log;
};
static_assert(sizeof(VringAddress) == 40);

struct MemoryRegion {
    uint64_t guest_address;
    uint64_t size;
    uint64_t user_address;  // where the front-end mapped it
    uint64_t mmap_offset;   // into the file descriptor sent with it
};
static_assert(sizeof(MemoryRegion) == 32);

struct MemoryTable {  // SET_MEM_TABLE, one fd per region
    uint32_t count;
    uint32_t padding;
    MemoryRegion regions[kMaxMemoryRegions];
};

// SET_VRING_KICK/CALL/ERR: the queue index; bit 8 set means no fd (polling).
inline constexpr uint64_t kVringIndexMask = 0xff;
inline constexpr uint64_t kVringNoFd = 1ull << 8;

struct ConfigHeader {  // GET_CONFIG / SET_CONFIG, then `size` bytes
    uint32_t offset;
    uint32_t size;
    uint32_t flags;
};
static_assert(sizeof(ConfigHeader) == 12);
inline constexpr uint32_t kMaxConfigSize = 256;

struct Inflight {  // GET_INFLIGHT_FD / SET_INFLIGHT_FD (with the region's fd)
    uint64_t mmap_size;
    uint64_t mmap_offset;
    uint16_t queue_count;
    uint16_t queue_size;
    uint32_t padding;
};
static_assert(sizeof(Inflight) == 24);

const char* request_name(uint32_t request);

}  // namespace hospes::vhost_user
