// libFuzzer target for what an operator or the toolstack hands
// hospes-blkback: requests on its control socket (JSON lines) and the
// --disk and --host-disk options. The first byte picks which; the rest is
// the text. Requests go to a real Server made once over a memfd disk (its
// worker loop is not running: set-disk and set-host-disk change the shared
// policy, which the worker would apply). Every answer must be one line of
// JSON, {"return": ...} or {"error": ...}; a crash or sanitizer report is
// a bug.
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include "blkback/control.hpp"
#include "blkback/server.hpp"
#include "common/log.hpp"

namespace {

#define CHECK(condition)                    \
    do {                                    \
        if (!(condition)) __builtin_trap(); \
    } while (0)

hospes::blkback::Server& server() {
    static auto* made = [] {
        hospes::log::init(false, "blkback-control-fuzz");
        int disk = ::memfd_create("blkback-control-fuzz-disk", 0);
        CHECK(disk >= 0 && ::ftruncate(disk, 1 << 20) == 0);
        std::string dir = "/tmp/blkback-control-fuzz-" + std::to_string(::getpid());
        ::mkdir(dir.c_str(), 0700);
        static std::string removed_at_exit = dir;
        std::atexit([] { std::filesystem::remove_all(removed_at_exit); });
        auto spec = "d0=/proc/self/fd/" + std::to_string(disk) + ",weight=5,iops=100";
        auto e = hospes::blkback::parse_export(spec);
        CHECK(e.has_value());
        std::vector<hospes::blkback::DiskExport> exports{std::move(*e)};
        auto s = hospes::blkback::Server::create(dir, std::move(exports), {}, dir + "/control");
        CHECK(s.has_value());
        return s->release();
    }();
    return *made;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    switch (data[0] % 3) {
    case 0: {
        auto answer = hospes::blkback::control_answer(server(), text);
        CHECK(answer.find('\n') == std::string::npos);
        CHECK(answer.starts_with("{\"return\":") || answer.starts_with("{\"error\":"));
        break;
    }
    case 1: {
        auto e = hospes::blkback::parse_export(text);
        if (e) CHECK(e->policy.weight >= 1 && e->policy.weight <= hospes::blkback::Policy::kMaxWeight);
        break;
    }
    case 2: {
        auto h = hospes::blkback::parse_host_disk(text);
        if (h) CHECK(h->depth >= 1 && h->depth <= 1024);
        break;
    }
    }
    return 0;
}
