// Kernel image recognition: valid bzImage and ELF images, and every kind
// of malformed or truncated input the loader must refuse with a clear error.
#include <elf.h>
#include <gtest/gtest.h>

#include <cstring>

#include "arch/x86_64/kernel_image.hpp"
#include "test_images.hpp"

namespace hospes::x86 {
namespace {

TEST(KernelImage, ParsesBzImage) {
    auto file = test::make_bzimage(4096 * 4);
    auto image = parse_kernel_image(file);
    ASSERT_TRUE(image) << image.error().message;
    EXPECT_EQ(image->mode, EntryMode::Linux64);
    EXPECT_EQ(image->entry, 0x100200u);
    ASSERT_EQ(image->segments.size(), 1u);
    EXPECT_EQ(image->segments[0].guest_address, 0x100000u);
    EXPECT_EQ(image->segments[0].bytes.size(), file.size() - 5 * 512);
    ASSERT_TRUE(image->setup_header);
    // Relocatable: decompresses at pref_address (16 MiB) into init_size bytes.
    EXPECT_EQ(image->load_end, 0x1000000u + 0x800000u);
    EXPECT_EQ(image->cmdline_limit, 2047u);
}

TEST(KernelImage, RejectsTruncatedBzImage) {
    auto file = test::make_bzimage(4096 * 4);
    file.resize(file.size() - 100);
    auto image = parse_kernel_image(file);
    ASSERT_FALSE(image);
    EXPECT_EQ(image.error().kind, ErrorKind::BadInput);
    EXPECT_NE(image.error().message.find("truncated"), std::string::npos) << image.error().message;
}

TEST(KernelImage, RejectsHeaderOnlyFragment) {
    auto file = test::make_bzimage(4096);
    file.resize(0x210);
    auto image = parse_kernel_image(file);
    ASSERT_FALSE(image);
    EXPECT_NE(image.error().message.find("truncated"), std::string::npos) << image.error().message;
}

TEST(KernelImage, RejectsOldProtocolAndMissing64BitEntry) {
    auto file = test::make_bzimage(4096);
    test::poke<uint16_t>(file, 0x206, 0x0205);
    auto old = parse_kernel_image(file);
    ASSERT_FALSE(old);
    EXPECT_NE(old.error().message.find("2.05"), std::string::npos) << old.error().message;

    file = test::make_bzimage(4096);
    test::poke<uint16_t>(file, 0x236, 0);
    auto no64 = parse_kernel_image(file);
    ASSERT_FALSE(no64);
    EXPECT_NE(no64.error().message.find("64-bit"), std::string::npos);
}

TEST(KernelImage, RejectsNonKernels) {
    std::vector<uint8_t> empty;
    EXPECT_FALSE(parse_kernel_image(empty));
    std::vector<uint8_t> text(10000, 'a');
    auto image = parse_kernel_image(text);
    ASSERT_FALSE(image);
    EXPECT_NE(image.error().message.find("not a kernel"), std::string::npos);
}

TEST(KernelImage, ParsesElfWithoutPvhNote) {
    auto file = test::make_elf(0x1000000, 0x1000000, 8192, false);
    auto image = parse_kernel_image(file);
    ASSERT_TRUE(image) << image.error().message;
    EXPECT_EQ(image->mode, EntryMode::Linux64);
    EXPECT_EQ(image->entry, 0x1000000u);
    EXPECT_EQ(image->load_end, 0x1000000u + 8192);
    EXPECT_FALSE(image->setup_header);
}

TEST(KernelImage, PrefersPvhEntryNote) {
    auto file = test::make_elf(0x1000000, 0x1000000, 8192, true);
    auto image = parse_kernel_image(file);
    ASSERT_TRUE(image) << image.error().message;
    EXPECT_EQ(image->mode, EntryMode::Pvh32);
    EXPECT_EQ(image->entry, test::kPvhEntry);
}

TEST(KernelImage, RejectsMalformedElf) {
    auto base = test::make_elf(0x1000000, 0x1000000, 8192, false);

    auto truncated = base;
    truncated.resize(truncated.size() - 4000);
    auto r1 = parse_kernel_image(truncated);
    ASSERT_FALSE(r1);
    EXPECT_NE(r1.error().message.find("truncated"), std::string::npos) << r1.error().message;

    auto bad_phoff = base;
    test::poke<uint64_t>(bad_phoff, offsetof(Elf64_Ehdr, e_phoff), 0xfffffffffffffff0ull);
    EXPECT_FALSE(parse_kernel_image(bad_phoff));

    auto wrong_machine = base;
    test::poke<uint16_t>(wrong_machine, offsetof(Elf64_Ehdr, e_machine), EM_AARCH64);
    EXPECT_FALSE(parse_kernel_image(wrong_machine));

    auto in_hole = test::make_elf(0xc0000000 - 4096, 0xc0000000 - 4096, 8192, false);
    auto r2 = parse_kernel_image(in_hole);
    ASSERT_FALSE(r2);
    EXPECT_NE(r2.error().message.find("3 GiB"), std::string::npos);

    auto header_only = base;
    header_only.resize(sizeof(Elf64_Ehdr) - 1);
    EXPECT_FALSE(parse_kernel_image(header_only));
}

TEST(KernelImage, SurvivesCorruptNotes) {
    auto file = test::make_elf(0x1000000, 0x1000000, 8192, true);
    // Make the note's name size absurd: the note is ignored, not trusted.
    test::poke<uint32_t>(file, test::kNoteOffset, 0xfffffff0u);
    auto image = parse_kernel_image(file);
    ASSERT_TRUE(image) << image.error().message;
    EXPECT_EQ(image->mode, EntryMode::Linux64);
}

}  // namespace
}  // namespace hospes::x86
