#include "toolstack/metrics.hpp"

#include <httplib.h>

#include <fmt/format.h>

#include "common/log.hpp"
#include "toolstack/monitor_process.hpp"

namespace hospes::toolstack {

using nlohmann::json;

namespace {

// One metric family: its help and type lines, then a sample per label set.
class Family {
public:
    Family(std::string name, const char* type, const char* help) : name_(std::move(name)) {
        head_ = fmt::format("# HELP {} {}\n# TYPE {} {}\n", name_, help, name_, type);
    }
    void add(const std::string& labels, double value) { samples_ += fmt::format("{} {}\n", series(labels), value); }
    void add(const std::string& labels, uint64_t value) { samples_ += fmt::format("{} {}\n", series(labels), value); }
    std::string text() const { return head_ + samples_; }

private:
    std::string series(const std::string& labels) const {
        return labels.empty() ? name_ : fmt::format("{}{{{}}}", name_, labels);
    }
    std::string name_, head_, samples_;
};

// Domain names are letters, digits and -_. (hospesd checks them), device
// names come from the same rules: nothing in them needs escaping.
std::string domain_labels(const json& row) {
    return fmt::format("domain=\"{}\",id=\"{}\"", row["name"].get<std::string>(), row["id"].get<uint32_t>());
}

}  // namespace

std::string prometheus_text(const json& rows, const json& backend_rows) {
    Family backend_up("hospes_backend_up", "gauge", "1 while the shared back-end (driver domain) runs and answers.");
    Family backend_restarts("hospes_backend_restarts_total", "counter",
                            "Times a back-end was started again: the whole process by hospesd, or its worker by its supervisor.");
    for (const auto& b : backend_rows) {
        std::string labels = fmt::format("backend=\"{}\"", b.value("name", ""));
        backend_up.add(labels, uint64_t{b.value("up", false)});
        backend_restarts.add(labels + ",level=\"process\"", b.value("restarts", uint64_t{0}));
        backend_restarts.add(labels + ",level=\"worker\"", b.value("worker_restarts", uint64_t{0}));
    }
    Family domains("hospes_domains", "gauge", "Domains hospesd keeps, running or preserved.");
    Family running("hospes_domain_running", "gauge", "1 while the domain's monitor runs (paused or not), 0 when preserved.");
    Family cpu("hospes_domain_cpu_seconds_total", "counter", "CPU time of the domain's monitor: its vCPUs and devices.");
    Family memory("hospes_domain_memory_bytes", "gauge", "Memory the domain is given (after mem-set).");
    Family maxmem("hospes_domain_max_memory_bytes", "gauge", "The most memory the domain may be given (maxmem).");
    Family vcpus("hospes_domain_vcpus", "gauge", "The domain's vCPUs.");
    Family restarts("hospes_domain_restarts_total", "counter",
                    "New boots hospesd started for the domain (on_reboot, on_crash restart) since it was created.");
    Family block_requests("hospes_block_requests_total", "counter", "Block requests by kind, as the guest made them.");
    Family block_bytes("hospes_block_bytes_total", "counter", "Bytes the guest read or wrote.");
    Family block_errors("hospes_block_errors_total", "counter", "Block requests that failed or were malformed.");
    Family net_packets("hospes_network_packets_total", "counter", "Frames the guest sent (tx) or was given (rx).");
    Family net_bytes("hospes_network_bytes_total", "counter", "Bytes of the frames the guest sent (tx) or was given (rx).");
    Family net_dropped("hospes_network_dropped_total", "counter", "Frames dropped: malformed, refused by the host, or no room.");
    uint64_t count = 0;
    for (const auto& row : rows) {
        uint32_t id = row["id"].get<uint32_t>();
        if (id == 0) continue;  // Domain-0, the host: node exporters cover it
        ++count;
        std::string labels = domain_labels(row);
        running.add(labels, uint64_t{row.value("pid", 0) != 0});
        cpu.add(labels, row["cpu_seconds"].get<double>());
        memory.add(labels, row["memory_mib"].get<uint64_t>() << 20);
        maxmem.add(labels, row.value("maxmem_mib", row["memory_mib"].get<uint64_t>()) << 20);
        vcpus.add(labels, row["vcpus"].get<uint64_t>());
        restarts.add(labels, row.value("restarts", uint64_t{0}));
        const json config = row.value("config", json::object());
        const json disks = config.value("disks", json::array());
        const json vifs = config.value("vifs", json::array());
        size_t disk = 0, vif = 0;
        for (const auto& device : row.value("devices", json::array())) {
            const json& c = device["counters"];
            auto counter = [&](const char* name) { return c.value(name, uint64_t{0}); };
            if (device["type"] == "block") {
                std::string name = disk < disks.size() ? disks[disk].value("vdev", "") : "";
                if (name.empty()) name = fmt::format("disk{}", disk);
                ++disk;
                std::string l = fmt::format("{},device=\"{}\"", labels, name);
                block_requests.add(l + ",op=\"read\"", counter("read_requests"));
                block_requests.add(l + ",op=\"write\"", counter("write_requests"));
                block_requests.add(l + ",op=\"flush\"", counter("flush_requests"));
                block_bytes.add(l + ",op=\"read\"", counter("read_bytes"));
                block_bytes.add(l + ",op=\"write\"", counter("write_bytes"));
                block_errors.add(l, counter("errors"));
            } else {
                std::string name = vif < vifs.size() ? vifs[vif].value("vifname", "") : "";
                if (name.empty()) name = fmt::format("vif{}.{}", id, vif);
                ++vif;
                std::string l = fmt::format("{},device=\"{}\"", labels, name);
                net_packets.add(l + ",direction=\"tx\"", counter("tx_packets"));
                net_packets.add(l + ",direction=\"rx\"", counter("rx_packets"));
                net_bytes.add(l + ",direction=\"tx\"", counter("tx_bytes"));
                net_bytes.add(l + ",direction=\"rx\"", counter("rx_bytes"));
                net_dropped.add(l + ",direction=\"tx\"", counter("tx_dropped"));
                net_dropped.add(l + ",direction=\"rx\"", counter("rx_dropped"));
            }
        }
    }
    domains.add("", count);
    std::string text;
    for (const Family* f : {&domains, &running, &cpu, &memory, &maxmem, &vcpus, &restarts, &block_requests,
                            &block_bytes, &block_errors, &net_packets, &net_bytes, &net_dropped, &backend_up,
                            &backend_restarts})
        text += f->text();
    return text;
}

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const std::string& address, std::string api_socket) {
    auto colon = address.rfind(':');
    int port = -1;
    if (colon != std::string::npos && colon + 1 < address.size() && address.size() - colon <= 6 &&
        address.find_first_not_of("0123456789", colon + 1) == std::string::npos)
        port = std::stoi(address.substr(colon + 1));
    std::string host = colon == std::string::npos ? "" : address.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (port < 0 || port > 65535 || host.empty())
        return bad_input("--metrics '{}': HOST:PORT, e.g. 127.0.0.1:9101 or [::1]:9101", address);
    std::unique_ptr<MetricsServer> metrics(new MetricsServer());
    metrics->server_ = std::make_unique<httplib::Server>();
    metrics->server_->Get("/metrics", [api_socket](const httplib::Request&, httplib::Response& response) {
        auto rows = json_request(api_socket, {{"execute", "top"}}, std::chrono::seconds(10));
        if (!rows) {
            response.status = 503;
            response.set_content("hospesd: " + rows.error().message + "\n", "text/plain");
            return;
        }
        auto backends = json_request(api_socket, {{"execute", "backends"}}, std::chrono::seconds(10));
        response.set_content(prometheus_text(*rows, backends ? *backends : json::array()),
                             "text/plain; version=0.0.4; charset=utf-8");
    });
    metrics->port_ = port == 0 ? metrics->server_->bind_to_any_port(host) : port;
    if (metrics->port_ < 0 || (port != 0 && !metrics->server_->bind_to_port(host, port)))
        return host_error("--metrics '{}': cannot listen there (in use, or no such address)", address);
    metrics->thread_ = std::thread([server = metrics->server_.get()] { server->listen_after_bind(); });
    log::info("metrics at http://{}:{}/metrics", address.substr(0, colon), metrics->port_);
    return metrics;
}

MetricsServer::~MetricsServer() {
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
}

}  // namespace hospes::toolstack
