#include "common/log.hpp"

#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <deque>
#include <memory>
#include <mutex>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace hospes::log {

namespace {

// The last N formatted messages.
class RecentSink : public spdlog::sinks::base_sink<std::mutex> {
public:
    explicit RecentSink(size_t capacity) : capacity_(capacity) {}

    std::vector<std::string> take(bool clear) {
        std::lock_guard lock(mutex_);
        std::vector<std::string> lines(lines_.begin(), lines_.end());
        if (clear) lines_.clear();
        return lines;
    }

protected:
    void sink_it_(const spdlog::details::log_msg& message) override {
        spdlog::memory_buf_t text;
        formatter_->format(message, text);
        std::string line(text.data(), text.size());
        while (!line.empty() && line.back() == '\n') line.pop_back();
        lines_.push_back(std::move(line));
        if (lines_.size() > capacity_) lines_.pop_front();
    }
    void flush_() override {}

private:
    size_t capacity_;
    std::deque<std::string> lines_;
};

std::shared_ptr<RecentSink> recent_sink;

// stderr through a CappedWriter.
class CappedSink : public spdlog::sinks::base_sink<std::mutex> {
public:
    CappedSink(int previous, const CappedWriter::Limits& limits) : writer_(STDERR_FILENO, previous, limits) {}

protected:
    void sink_it_(const spdlog::details::log_msg& message) override {
        spdlog::memory_buf_t text;
        formatter_->format(message, text);
        writer_.write({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
    }
    void flush_() override {}

private:
    CappedWriter writer_;
};

}  // namespace

void init(bool verbose, const char* program) {
    auto logger = spdlog::get(program);
    if (!logger) logger = spdlog::stderr_logger_mt(program);
    logger->set_pattern(std::string(program) + ": %l: %v");
    logger->set_level(verbose ? spdlog::level::debug : spdlog::level::info);
    spdlog::set_default_logger(logger);
}

void cap_output(int previous, const CappedWriter::Limits& limits) {
    struct stat st{};
    if (::fstat(STDERR_FILENO, &st) != 0 || !S_ISREG(st.st_mode)) return;
    auto logger = spdlog::default_logger();
    auto sink = std::make_shared<CappedSink>(previous, limits);
    // The same lines as the stderr sink it replaces.
    sink->set_pattern(std::string(logger->name()) + ": %l: %v");
    auto& sinks = logger->sinks();
    sinks.erase(sinks.begin());
    sinks.insert(sinks.begin(), std::move(sink));
}

void keep_recent(size_t lines) {
    if (recent_sink) return;
    recent_sink = std::make_shared<RecentSink>(lines);
    recent_sink->set_pattern("[%Y-%m-%d %H:%M:%S.%e] %l: %v");
    spdlog::default_logger()->sinks().push_back(recent_sink);
}

std::vector<std::string> recent(bool clear) {
    if (!recent_sink) return {};
    return recent_sink->take(clear);
}

namespace {
std::mutex milestones_mutex;
std::vector<std::pair<const char*, long long>> milestones;
}  // namespace

void milestone(const char* name) {
    if (!spdlog::should_log(spdlog::level::debug)) return;
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    std::lock_guard lock(milestones_mutex);
    milestones.emplace_back(name, now.tv_sec * 1000000000ll + now.tv_nsec);
}

void print_milestones() {
    std::lock_guard lock(milestones_mutex);
    for (const auto& [name, ns] : milestones) spdlog::debug("milestone {}: monotonic {} ns", name, ns);
    milestones.clear();
}

void forget_milestones() {
    std::lock_guard lock(milestones_mutex);
    milestones.clear();
}

}  // namespace hospes::log
