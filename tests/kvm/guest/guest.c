/*
 * A freestanding test guest for hospes's kvm tests. It boots through the
 * monitor's 64-bit Linux entry like a kernel would and runs the scenario
 * its command line names (its last word, so that a toolstack's default
 * words may come first), reporting on COM1 and ending with an i8042 reset
 * (or, for "triple", a triple fault; "idle" never ends). Scenarios:
 *   hello   print a greeting
 *   mptable count the processors the MP table announces
 *   smp     start every AP with INIT/SIPI and count those that run
 *   mmio    read and write an address no device claims
 *   memory  write and read back a pattern at the top of low RAM
 *   rtc     print the CMOS clock's date
 *   echo    echo one line received on COM1
 *   cpuid   print the hypervisor signature and KVM's PV feature bits
 *   triple  fault with no IDT
 *   idle    say so and halt for good (a domain that just runs: the scale bench)
 */
#include <stdint.h>

#define COM1 0x3f8
#define LSR_DATA_READY 0x01
#define BOOT_CMDLINE_PTR 0x228
#define E820_ENTRIES 0x1e8
#define E820_TABLE 0x2d0
#define AP_COUNTER ((volatile uint16_t *)0x5000)
#define TRAMPOLINE ((uint8_t *)0x8000)
#define LAPIC_ICR_LOW ((volatile uint32_t *)0xfee00300)
#define LAPIC_ICR_HIGH ((volatile uint32_t *)0xfee00310)

static inline void outb(uint16_t port, uint8_t value) { __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) {
    uint8_t value;
    __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

static void putc_(char c) { outb(COM1, (uint8_t)c); }
static void puts_(const char *s) { while (*s) putc_(*s++); }
static void put_hex(uint64_t v) {
    static const char digits[] = "0123456789abcdef";
    char buffer[17];
    int i = 16;
    buffer[16] = 0;
    do { buffer[--i] = digits[v & 0xf]; v >>= 4; } while (v);
    puts_(buffer + i);
}
static void put_dec(uint64_t v) {
    char buffer[21];
    int i = 20;
    buffer[20] = 0;
    do { buffer[--i] = (char)('0' + v % 10); v /= 10; } while (v);
    puts_(buffer + i);
}

static int streq(const char *a, const char *b) {
    while (*a && *a == *b) { a++; b++; }
    return *a == *b;
}

static void reset(void) {
    outb(0x64, 0xfe);
    for (;;) __asm__ volatile("hlt");
}

static uint32_t mptable_processors(void) {
    const uint8_t *pointer = (const uint8_t *)0x9fc00;
    if (pointer[0] != '_' || pointer[1] != 'M' || pointer[2] != 'P' || pointer[3] != '_') return 0;
    const uint8_t *config = (const uint8_t *)(uintptr_t)*(const uint32_t *)(pointer + 4);
    uint16_t count = *(const uint16_t *)(config + 34);
    const uint8_t *entry = config + 44;
    uint32_t processors = 0;
    for (uint16_t i = 0; i < count; i++) {
        if (entry[0] == 0) { processors++; entry += 20; } else { entry += 8; }
    }
    return processors;
}

static void start_aps(void) {
    /* Real mode at 0x8000: ds = 0; lock inc word [0x5000]; cli; hlt; jmp hlt */
    static const uint8_t trampoline[] = {0xb8, 0x00, 0x00, 0x8e, 0xd8, 0xf0, 0xff, 0x06,
                                         0x00, 0x50, 0xfa, 0xf4, 0xeb, 0xfd};
    for (unsigned i = 0; i < sizeof(trampoline); i++) TRAMPOLINE[i] = trampoline[i];
    *AP_COUNTER = 0;
    *LAPIC_ICR_HIGH = 0;
    *LAPIC_ICR_LOW = 0x000c4500; /* INIT to all but self */
    *LAPIC_ICR_LOW = 0x000c4608; /* SIPI, vector 0x08 -> 0x8000 */
}

void guest_main(const uint8_t *boot_params) {
    const char *cmdline = (const char *)(uintptr_t)*(const uint32_t *)(boot_params + BOOT_CMDLINE_PTR);
    for (const char *c = cmdline; *c; c++)
        if (*c == ' ' && c[1] != 0 && c[1] != ' ') cmdline = c + 1;
    if (streq(cmdline, "hello")) {
        puts_("hello from the test guest\n");
    } else if (streq(cmdline, "mptable")) {
        puts_("processors=");
        put_dec(mptable_processors());
        putc_('\n');
    } else if (streq(cmdline, "smp")) {
        uint32_t expected = mptable_processors() - 1;
        start_aps();
        for (uint64_t spin = 0; spin < 200000000 && *AP_COUNTER < expected; spin++) __asm__ volatile("pause");
        puts_("started=");
        put_dec(*AP_COUNTER);
        putc_('\n');
    } else if (streq(cmdline, "mmio")) {
        volatile uint32_t *hole = (volatile uint32_t *)0xe0000000;  /* in the hole, past the virtio windows */
        *hole = 0x12345678;
        puts_("mmio=");
        put_hex(*hole);
        putc_('\n');
    } else if (streq(cmdline, "memory")) {
        uint8_t entries = boot_params[E820_ENTRIES];
        const uint8_t *last = boot_params + E820_TABLE + 20u * (entries - 1u);
        uint64_t top = *(const uint64_t *)last + *(const uint64_t *)(last + 8);
        if (top > 0xc0000000) top = 0xc0000000;
        volatile uint64_t *word = (volatile uint64_t *)(top - 8);
        *word = 0x686f7370657321;
        puts_("top=");
        put_hex(top);
        puts_(*word == 0x686f7370657321 ? " pattern ok\n" : " pattern bad\n");
    } else if (streq(cmdline, "rtc")) {
        outb(0x70, 0x32);
        uint8_t century = inb(0x71);
        outb(0x70, 0x09);
        uint8_t year = inb(0x71);
        outb(0x70, 0x08);
        uint8_t month = inb(0x71);
        puts_("rtc=");
        put_hex(century);
        put_hex(year);
        putc_('-');
        put_hex(month);
        putc_('\n');
    } else if (streq(cmdline, "echo")) {
        puts_("ready\n");
        for (;;) {
            while (!(inb(COM1 + 5) & LSR_DATA_READY)) __asm__ volatile("pause");
            char c = (char)inb(COM1);
            putc_(c);
            if (c == '\n') break;
        }
    } else if (streq(cmdline, "cpuid")) {
        uint32_t eax, ebx, ecx, edx;
        __asm__ volatile("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(0x40000000), "c"(0));
        char signature[13];
        for (int i = 0; i < 4; i++) {
            signature[i] = (char)(ebx >> (8 * i));
            signature[4 + i] = (char)(ecx >> (8 * i));
            signature[8 + i] = (char)(edx >> (8 * i));
        }
        signature[12] = 0;
        __asm__ volatile("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(0x40000001), "c"(0));
        puts_("signature=");
        puts_(signature);
        puts_(" features=");
        put_hex(eax);
        __asm__ volatile("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(1), "c"(0));
        puts_(" apic=");
        put_dec(ebx >> 24);
        puts_(ecx & (1u << 31) ? " hypervisor\n" : "\n");
    } else if (streq(cmdline, "idle")) {
        puts_("idle\n");
        for (;;) __asm__ volatile("cli; hlt");
    } else if (streq(cmdline, "triple")) {
        static const struct { uint16_t limit; uint64_t base; } __attribute__((packed)) empty = {0, 0};
        __asm__ volatile("lidt %0; ud2" : : "m"(empty));
    } else {
        puts_("unknown scenario: ");
        puts_(cmdline);
        putc_('\n');
    }
    reset();
}
