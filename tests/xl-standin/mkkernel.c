/* xl-mkkernel — part of the xl STAND-IN toolstack (tests only), not of Xen.
 *
 * Writes a small ELF file that carries the Xen metadata of a kernel and nothing that runs:
 * the stand-in's checker (xlcheck) reads these notes the way Xen's domain builder does
 * (libelf, libxenguest) to decide whether a kernel can boot as PV or PVH. No guest ever
 * runs here, so a kernel's code does not matter; its notes do. The sample Micro-VNF
 * (build/vnf/hello) is a real PVH kernel; no PV kernel (ClickOS, Mini-OS) can be built
 * on this machine, so the tests use these.
 *
 *   xl-mkkernel pv OUT          ELF notes of a Mini-OS (ClickOS) PV kernel: GUEST_OS "Mini-OS",
 *                               LOADER "generic", XEN_VERSION "xen-3.0", ENTRY, HYPERCALL_PAGE
 *   xl-mkkernel pv-legacy OUT   the same in the older __xen_guest section, no notes
 *   xl-mkkernel pvh OUT         only XEN_ELFNOTE_PHYS32_ENTRY (what a PVH-only kernel has)
 *   xl-mkkernel plain OUT       an ELF without any Xen metadata
 *
 * All are ELF64 x86-64 with one PT_LOAD segment (a hlt loop) at 1 MiB. */
#include <elf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* xen/include/public/elfnote.h */
#define XEN_ELFNOTE_ENTRY 1
#define XEN_ELFNOTE_HYPERCALL_PAGE 2
#define XEN_ELFNOTE_XEN_VERSION 5
#define XEN_ELFNOTE_GUEST_OS 6
#define XEN_ELFNOTE_LOADER 8
#define XEN_ELFNOTE_PHYS32_ENTRY 18

#define LOAD_ADDR 0x100000u
#define CODE_OFFSET 0x1000u

static unsigned char image[0x2000];
static size_t notes_len;

static void put(size_t off, const void *p, size_t n)
{
	if (off + n > sizeof image) {
		fprintf(stderr, "xl-mkkernel: image overflow\n");
		exit(1);
	}
	memcpy(image + off, p, n);
}

static size_t align4(size_t n) { return (n + 3) & ~(size_t)3; }

/* Appends one "Xen" note to the notes area (which starts right after the headers). */
static void note(size_t base, uint32_t type, const void *desc, uint32_t desc_len)
{
	uint32_t hdr[3] = {4, desc_len, type};
	size_t off = base + notes_len;
	put(off, hdr, sizeof hdr);
	put(off + sizeof hdr, "Xen", 4);
	put(off + sizeof hdr + 4, desc, desc_len);
	notes_len += sizeof hdr + 4 + align4(desc_len);
}

static void note_str(size_t base, uint32_t type, const char *s)
{
	note(base, type, s, (uint32_t)strlen(s) + 1);
}

static void note_u64(size_t base, uint32_t type, uint64_t v)
{
	note(base, type, &v, sizeof v);
}

int main(int argc, char **argv)
{
	static const unsigned char code[] = {0xf4, 0xeb, 0xfd}; /* hlt; jmp hlt */
	static const char guest_info[] = "GUEST_OS=Mini-OS,XEN_VER=xen-3.0,VIRT_BASE=0x0,ELF_PADDR_OFFSET=0x0,"
	                                 "HYPERCALL_PAGE=0x101,LOADER=generic";
	static const char shstrtab[] = "\0__xen_guest\0.shstrtab";
	Elf64_Ehdr eh = {0};
	Elf64_Phdr ph[2] = {{0}};
	const size_t notes_at = sizeof eh + sizeof ph;
	size_t end = CODE_OFFSET + sizeof code;
	const char *kind;
	FILE *f;
	int nph = 1;

	if (argc != 3) {
		fprintf(stderr, "usage: xl-mkkernel pv|pv-legacy|pvh|plain OUT   (the xl stand-in's test kernels)\n");
		return 2;
	}
	kind = argv[1];
	if (strcmp(kind, "pv") == 0) {
		note_str(notes_at, XEN_ELFNOTE_GUEST_OS, "Mini-OS");
		note_str(notes_at, XEN_ELFNOTE_LOADER, "generic");
		note_str(notes_at, XEN_ELFNOTE_XEN_VERSION, "xen-3.0");
		note_u64(notes_at, XEN_ELFNOTE_ENTRY, LOAD_ADDR);
		note_u64(notes_at, XEN_ELFNOTE_HYPERCALL_PAGE, LOAD_ADDR + 0x1000);
	} else if (strcmp(kind, "pvh") == 0) {
		uint32_t entry = LOAD_ADDR;
		note(notes_at, XEN_ELFNOTE_PHYS32_ENTRY, &entry, sizeof entry);
	} else if (strcmp(kind, "pv-legacy") != 0 && strcmp(kind, "plain") != 0) {
		fprintf(stderr, "xl-mkkernel: unknown kind \"%s\" (pv, pv-legacy, pvh or plain)\n", kind);
		return 2;
	}
	if (notes_at + notes_len > CODE_OFFSET) {
		fprintf(stderr, "xl-mkkernel: notes too long\n");
		return 1;
	}
	put(CODE_OFFSET, code, sizeof code);

	ph[0] = (Elf64_Phdr){.p_type = PT_LOAD, .p_flags = PF_R | PF_X, .p_offset = CODE_OFFSET,
	                     .p_vaddr = LOAD_ADDR, .p_paddr = LOAD_ADDR, .p_filesz = sizeof code,
	                     .p_memsz = sizeof code, .p_align = 0x1000};
	if (notes_len) {
		ph[1] = (Elf64_Phdr){.p_type = PT_NOTE, .p_flags = PF_R, .p_offset = notes_at,
		                     .p_filesz = notes_len, .p_memsz = notes_len, .p_align = 4};
		nph = 2;
	}

	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_EXEC;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	eh.e_entry = LOAD_ADDR;
	eh.e_phoff = sizeof eh;
	eh.e_ehsize = sizeof eh;
	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_phnum = (Elf64_Half)nph;

	if (strcmp(kind, "pv-legacy") == 0) {
		/* sections: null, __xen_guest (the key=value string), .shstrtab */
		size_t info_at = end, strtab_at = info_at + sizeof guest_info, sh_at = (strtab_at + sizeof shstrtab + 7) & ~7u;
		Elf64_Shdr sh[3] = {{0}};
		put(info_at, guest_info, sizeof guest_info);
		put(strtab_at, shstrtab, sizeof shstrtab);
		sh[1] = (Elf64_Shdr){.sh_name = 1, .sh_type = SHT_PROGBITS, .sh_offset = info_at,
		                     .sh_size = sizeof guest_info, .sh_addralign = 1};
		sh[2] = (Elf64_Shdr){.sh_name = 13, .sh_type = SHT_STRTAB, .sh_offset = strtab_at,
		                     .sh_size = sizeof shstrtab, .sh_addralign = 1};
		put(sh_at, sh, sizeof sh);
		eh.e_shoff = sh_at;
		eh.e_shentsize = sizeof(Elf64_Shdr);
		eh.e_shnum = 3;
		eh.e_shstrndx = 2;
		end = sh_at + sizeof sh;
	}
	put(0, &eh, sizeof eh);
	put(sizeof eh, ph, sizeof ph[0] * (size_t)nph);

	if (!(f = fopen(argv[2], "wb"))) {
		perror(argv[2]);
		return 1;
	}
	if (fwrite(image, 1, end, f) != end || fclose(f) != 0) {
		perror(argv[2]);
		return 1;
	}
	return 0;
}
