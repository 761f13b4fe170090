/* hello.c — the sample Micro-VNF: a diskless kernel that says it is ready on the first
 * serial port (COM1, 0x3f8), echoes its command line, then halts until destroyed.
 * Entered from boot.S in 32-bit protected mode; no libc, no interrupts, no memory map. */
#include <stddef.h>
#include <stdint.h>

#define COM1 0x3f8
#define CMDLINE_MAX 1024

enum vnf_boot { VNF_BOOT_MULTIBOOT = 1, VNF_BOOT_PVH = 2 };

#define PVH_MAGIC 0x336ec578u
#define MULTIBOOT_INFO_CMDLINE (1u << 2)

/* The fields we read of Xen's struct hvm_start_info (xen/include/public/arch-x86/hvm/start_info.h). */
struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
};

/* The fields we read of the multiboot v1 info structure. */
struct multiboot_info {
	uint32_t flags;
	uint32_t mem_lower, mem_upper;
	uint32_t boot_device;
	uint32_t cmdline;
};

void vnf_main(uint32_t protocol, uint32_t info);

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static void serial_init(void)
{
	outb(COM1 + 1, 0x00); /* no interrupts */
	outb(COM1 + 3, 0x80); /* DLAB on */
	outb(COM1 + 0, 0x01); /* 115200 baud */
	outb(COM1 + 1, 0x00);
	outb(COM1 + 3, 0x03); /* 8N1, DLAB off */
	outb(COM1 + 2, 0xc7); /* FIFO on, cleared */
	outb(COM1 + 4, 0x03); /* DTR, RTS */
}

static void serial_putc(char c)
{
	/* bounded wait for the transmitter: a missing UART must not hang us before "READY" */
	for (int spin = 0; spin < 100000 && !(inb(COM1 + 5) & 0x20); spin++)
		;
	outb(COM1, (uint8_t)c);
}

static void serial_puts(const char *s)
{
	for (; *s; s++) {
		if (*s == '\n')
			serial_putc('\r');
		serial_putc(*s);
	}
}

/* The command line, printable ASCII only and bounded: it comes from whoever started us. */
static void serial_put_cmdline(const char *s)
{
	for (size_t i = 0; i < CMDLINE_MAX && s[i]; i++)
		serial_putc(s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?');
}

static const char *boot_cmdline(uint32_t protocol, uint32_t info)
{
	if (protocol == VNF_BOOT_PVH) {
		const struct hvm_start_info *si = (const struct hvm_start_info *)(uintptr_t)info;
		if (si && si->magic == PVH_MAGIC && si->cmdline_paddr && si->cmdline_paddr < 0xffffffffu)
			return (const char *)(uintptr_t)si->cmdline_paddr;
	} else if (protocol == VNF_BOOT_MULTIBOOT) {
		const struct multiboot_info *mi = (const struct multiboot_info *)(uintptr_t)info;
		if (mi && (mi->flags & MULTIBOOT_INFO_CMDLINE) && mi->cmdline) {
			/* by convention (GRUB, QEMU) the first word is the kernel's own path */
			const char *s = (const char *)(uintptr_t)mi->cmdline;
			for (size_t i = 0; i < CMDLINE_MAX && *s && *s != ' '; i++)
				s++;
			while (*s == ' ')
				s++;
			return s;
		}
	}
	return NULL;
}

void vnf_main(uint32_t protocol, uint32_t info)
{
	const char *cmdline = boot_cmdline(protocol, info);

	serial_init();
	serial_puts(protocol == VNF_BOOT_PVH ? "microvim-vnf: booted via PVH\n" : "microvim-vnf: booted via multiboot\n");
	if (cmdline && *cmdline) {
		serial_puts("microvim-vnf: cmdline: ");
		serial_put_cmdline(cmdline);
		serial_puts("\n");
	}
	serial_puts("MICROVIM-VNF READY\n");
	/* Stay alive until destroyed: interrupts are off, so hlt parks the vCPU for good. */
	for (;;)
		__asm__ volatile("cli; hlt");
}
