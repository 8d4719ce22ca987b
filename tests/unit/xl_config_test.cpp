// The xl.cfg parser on files written from xl.cfg(5)'s syntax (tests/xl) and
// on malformed text: each error is one line naming file:line:column.
#include "toolstack/xl_config.hpp"

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace {

using hospes::toolstack::parse_xl_config;
using hospes::toolstack::XlConfig;
using hospes::toolstack::XlValue;

XlConfig parse_file(const std::string& name) {
    std::ifstream in(std::string(HOSPES_XL_DIR) + "/" + name);
    std::stringstream text;
    text << in.rdbuf();
    auto config = parse_xl_config(text.str(), name);
    EXPECT_TRUE(config) << config.error().message;
    return config ? *config : XlConfig{};
}

std::string string_of(const XlConfig& config, const char* key) {
    auto* v = config.find(key);
    return v && v->kind == XlValue::Kind::String ? v->text : "(none)";
}
std::string number_of(const XlConfig& config, const char* key) {
    auto* v = config.find(key);
    return v && v->kind == XlValue::Kind::Number ? v->text : "(none)";
}
std::vector<std::string> list_of(const XlConfig& config, const char* key) {
    std::vector<std::string> out;
    if (auto* v = config.find(key); v && v->kind == XlValue::Kind::List)
        for (const auto& item : v->items) out.push_back(item.text);
    return out;
}

std::string error_of(std::string_view text) {
    auto config = parse_xl_config(text, "bad.cfg");
    return config ? "(accepted)" : config.error().message;
}

TEST(XlConfig, ReadsATypicalDomainFile) {
    auto config = parse_file("web1.cfg");
    EXPECT_EQ(string_of(config, "name"), "web1");
    EXPECT_EQ(string_of(config, "type"), "pvh");
    EXPECT_EQ(number_of(config, "memory"), "1024");
    EXPECT_EQ(number_of(config, "maxvcpus"), "4");
    EXPECT_EQ(number_of(config, "cpu_cap"), "0x32");
    EXPECT_EQ(string_of(config, "cpus"), "0-1");
    EXPECT_EQ(string_of(config, "ramdisk"), "/srv/kernels/initrd.img-6.1.0-27-amd64");
    EXPECT_EQ(string_of(config, "root"), "/dev/xvda1 ro");
    EXPECT_EQ(list_of(config, "disk"),
              (std::vector<std::string>{"phy:/dev/vg0/web1-root,xvda,w", "file:/srv/images/web1-data.img,xvdb,r",
                                        "format=raw, vdev=xvdc, access=rw, target=/srv/images/disk:with:colons.img"}));
    EXPECT_EQ(list_of(config, "vif"),
              std::vector<std::string>{"mac=00:16:3e:12:34:56,bridge=xenbr0,ip=192.0.2.10,rate=10Mb/s"});
    // Two settings on one line, split by ';'.
    EXPECT_EQ(string_of(config, "on_poweroff"), "destroy");
    EXPECT_EQ(string_of(config, "on_reboot"), "restart");
    EXPECT_EQ(string_of(config, "on_crash"), "preserve");
    ASSERT_NE(config.find("disk"), nullptr);
    EXPECT_EQ(config.find("disk")->line, 19);  // where the list starts
    EXPECT_EQ(config.find("nothing"), nullptr);
}

TEST(XlConfig, ReadsListsAppendsAndEscapes) {
    auto config = parse_file("lists.cfg");
    ASSERT_NE(config.find("empty"), nullptr);
    EXPECT_EQ(config.find("empty")->kind, XlValue::Kind::List);
    EXPECT_TRUE(config.find("empty")->items.empty());
    auto* nested = config.find("nested");
    ASSERT_NE(nested, nullptr);
    ASSERT_EQ(nested->items.size(), 2u);
    EXPECT_EQ(nested->items[0].kind, XlValue::Kind::List);
    EXPECT_EQ(nested->items[0].items[1].text, "2");
    EXPECT_EQ(list_of(config, "disk"),
              (std::vector<std::string>{"phy:/dev/vg0/db1,xvda,w", "tap:aio:/srv/db1-logs.img,xvdb,w",
                                        "vdev=xvdc,target=/srv/db1-scratch.img"}));
    EXPECT_EQ(string_of(config, "extra"), "console=hvc0 root=/dev/xvda1");
    EXPECT_EQ(string_of(config, "name"), "db1");
    EXPECT_EQ(number_of(config, "memory"), "0777");
    EXPECT_EQ(number_of(config, "vcpus"), "010");
    EXPECT_EQ(string_of(config, "escapes"), "tab\there \"quoted\" AB back\\slash 'single'");
    EXPECT_EQ(string_of(config, "single"), "it's");
}

TEST(XlConfig, TheLastAssignmentWinsAndTheFileMayEndWithoutANewline) {
    auto config = parse_xl_config("memory = 512\nmemory = 768", "x.cfg");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(number_of(*config, "memory"), "768");
    EXPECT_EQ(config->settings.size(), 1u);
    EXPECT_TRUE(parse_xl_config("", "empty.cfg"));
    EXPECT_TRUE(parse_xl_config("# only a comment", "comment.cfg"));
}

TEST(XlConfig, AMalformedFileIsOneErrorWithFileLineAndColumn) {
    EXPECT_EQ(error_of("memory = 512M\n"), "bad.cfg:1:13: unexpected 'M' after the value of 'memory' (one setting per line or ';')");
    EXPECT_EQ(error_of("name = web1\n"), "bad.cfg:1:8: expected a value: a string in quotes, a number or a [list]");
    EXPECT_EQ(error_of("name = \"web1\nmemory = 1\n"), "bad.cfg:1:8: the string is never closed");
    EXPECT_EQ(error_of("vcpus = 2\nmemory 512\n"), "bad.cfg:2:8: expected '=' or '+=' after 'memory'");
    EXPECT_EQ(error_of("Name = \"x\"\n"), "bad.cfg:1:1: expected a key (lowercase letters, digits, '.' and '_')");
    EXPECT_EQ(error_of("disk = [ 'a',\n  'b'\n"), "bad.cfg:1:8: the list is never closed with ']'");
    EXPECT_EQ(error_of("disk = [ 'a' 'b' ]\n"), "bad.cfg:1:14: expected ',' or ']' in the list, not '''");
    EXPECT_EQ(error_of("vcpus = 08\n"), "bad.cfg:1:9: '08' is not a number");
    EXPECT_EQ(error_of("vcpus = 0xg\n"), "bad.cfg:1:9: '0x' is not a number");
    EXPECT_EQ(error_of("memory =\n"), "bad.cfg:1:9: expected a value");
    EXPECT_EQ(error_of("extra = \"a\\qb\"\n"), "bad.cfg:1:11: unknown escape '\\q' in a string");
    EXPECT_EQ(error_of("extra = \"\\x4\"\n"), "bad.cfg:1:10: '\\x' needs two hex digits in a string");
    EXPECT_EQ(error_of("extra = \"a\"\nextra += [ 'b' ]\n"),
              "bad.cfg:2:10: 'extra': += cannot add a list to a string or a string to a list");
    EXPECT_EQ(error_of("memory = 1\nmemory += 2\n"), "bad.cfg:2:11: 'memory': += does not add numbers");
    EXPECT_EQ(error_of("kernel = (\"/boot/vmlinuz\")\n"),
              "bad.cfg:1:10: expected a value: a string in quotes, a number or a [list]");
    EXPECT_EQ(error_of("a = [[[[[[[[[[1]]]]]]]]]]\n"), "bad.cfg:1:13: lists nested too deeply");
    EXPECT_EQ(error_of("x = \x01\n"), "bad.cfg:1:5: unexpected '\\x01'");
}

}  // namespace
