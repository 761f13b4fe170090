/* xlcheck — part of the xl STAND-IN toolstack (tests/xl-standin/xl), not of Xen.
 *
 * Parses an xl domain config with Xen's own parser, libxlutil (xlu_cfg_readfile and the
 * xlu_cfg_get_* accessors: the code `xl create` runs first; it needs no /dev/xen), then
 * checks it against the xl.cfg(5) rules for a diskless ClickOS-style PV/PVH guest:
 *
 *   name      required string, 1-63 chars [A-Za-z0-9._-], not all digits
 *   type      required "pv" or "pvh" (a unikernel booted directly, no firmware)
 *   kernel    required absolute path to a readable file;  ramdisk: same, optional.
 *             The kernel must be an ELF image that Xen's domain builder would load as
 *             that type (the rules of libelf's elf_xen_note_check and libxenguest's
 *             xc_dom_guest_type, read from the Xen metadata as they do):
 *               pvh  needs the note XEN_ELFNOTE_PHYS32_ENTRY ("image not capable of
 *                    booting inside a HVM container" otherwise);
 *               pv   needs Xen notes (PT_NOTE) or a __xen_guest section, with LOADER
 *                    "generic" or GUEST_OS "linux...", and XEN_VERSION "xen-3.0": a
 *                    PVH-only kernel (PHYS32_ENTRY alone) is refused as PV;
 *             e_machine must be EM_386 or EM_X86_64.
 *   extra     optional string (the kernel command line)
 *   memory    required integer MiB > 0;  maxmem: optional integer >= memory
 *   vcpus     optional integer 1-512;    maxvcpus: optional integer >= vcpus
 *   vif       optional list of strings "key=value,..." with xl-network-configuration(5)
 *             keys; bridge= an interface name, mac= six hex octets
 *   on_poweroff, on_reboot, on_crash, on_watchdog: optional, one of xl.cfg's actions
 *   disk      must be absent (diskless);  any other key is refused (a typo would be
 *             silently ignored by xl, which is how configs go wrong unnoticed)
 *
 * Usage: xlcheck FILE. Exit 0 and prints "name=NAME", "type=TYPE", "guest_os=OS" (the
 * kernel's GUEST_OS, or "-") and "extra=CMDLINE" lines when the config is good; exit 1 and
 * one line per problem on stderr when not. */
#include <ctype.h>
#include <elf.h>
#include <errno.h>
#include <libxlutil.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int problems;
static const char *file;

#define PROBLEM(...)                                                      \
	do {                                                              \
		fprintf(stderr, "xlcheck: ");                             \
		fprintf(stderr, __VA_ARGS__);                             \
		fputc('\n', stderr);                                      \
		problems++;                                               \
	} while (0)

static const char *const known_keys[] = {"name", "type", "kernel", "ramdisk", "extra", "memory", "maxmem",
                                         "vcpus", "maxvcpus", "vif", "on_poweroff", "on_reboot", "on_crash",
                                         "on_watchdog", NULL};
static const char *const actions[] = {"destroy", "restart", "rename-restart", "preserve",
                                      "coredump-destroy", "coredump-restart", "soft-reset", NULL};
static const char *const vif_keys[] = {"bridge", "mac", "ip", "script", "type", "model", "vifname", "rate",
                                       "backend", "gatewaydev", "mtu", "trusted", "untrusted", NULL};

static bool in_list(const char *const *list, const char *s, size_t n)
{
	for (int i = 0; list[i]; i++)
		if (strlen(list[i]) == n && strncmp(list[i], s, n) == 0)
			return true;
	return false;
}

static bool ifname_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
			return false;
	return true;
}

/* libxlutil has no iterator over keys: find each "KEY =" or "KEY +=" at the start of a
 * statement with a small scan (the values are left to libxlutil). */
static void check_keys(void)
{
	FILE *f = fopen(file, "r");
	char line[8192];
	if (!f) {
		PROBLEM("cannot open: %s", strerror(errno));
		return;
	}
	while (fgets(line, sizeof line, f)) {
		char *p = line;
		size_t n;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '#' || *p == '\n' || *p == '\0' || *p == '\'' || *p == '"' || *p == ']' || *p == ',')
			continue; /* comment, blank, or a list continued over lines */
		n = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
		if (n == 0)
			continue;
		if (strncmp(p, "disk", n) == 0 && n == 4)
			PROBLEM("disk is set: a Micro-VNF guest is diskless (the kernel is injected by the toolstack)");
		else if (!in_list(known_keys, p, n))
			PROBLEM("unexpected key \"%.*s\" (not part of a ClickOS-style guest config)", (int)n, p);
	}
	fclose(f);
}

static const char *get_string(XLU_Config *cfg, const char *key, bool required)
{
	const char *v = NULL;
	int rc = xlu_cfg_get_string(cfg, key, &v, 0);
	if (rc == ESRCH) {
		if (required)
			PROBLEM("%s is required", key);
		return NULL;
	}
	if (rc != 0) {
		PROBLEM("%s must be a string", key);
		return NULL;
	}
	return v;
}

static bool get_long(XLU_Config *cfg, const char *key, bool required, long min, long max, long *out)
{
	int rc = xlu_cfg_get_long(cfg, key, out, 0);
	if (rc == ESRCH) {
		if (required)
			PROBLEM("%s is required", key);
		return false;
	}
	if (rc != 0) {
		PROBLEM("%s must be an integer", key);
		return false;
	}
	if (*out < min || *out > max) {
		PROBLEM("%s = %ld is out of range [%ld, %ld]", key, *out, min, max);
		return false;
	}
	return true;
}

static void check_file(const char *key, const char *path)
{
	if (!path)
		return;
	if (path[0] != '/')
		PROBLEM("%s must be an absolute path (got \"%s\")", key, path);
	else if (access(path, R_OK) != 0)
		PROBLEM("%s %s: %s", key, path, strerror(errno));
}

static bool mac_ok(const char *s, size_t n)
{
	if (n != 17)
		return false;
	for (size_t i = 0; i < n; i++)
		if (i % 3 == 2 ? s[i] != ':' : !isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

static void check_vif(const char *spec)
{
	const char *p = spec;
	if (!*p) {
		PROBLEM("vif entry is empty");
		return;
	}
	while (*p) {
		size_t n = strcspn(p, ","), k = strcspn(p, "=");
		if (k >= n) {
			PROBLEM("vif \"%s\": \"%.*s\" is not key=value", spec, (int)n, p);
		} else if (!in_list(vif_keys, p, k)) {
			PROBLEM("vif \"%s\": unknown key \"%.*s\"", spec, (int)k, p);
		} else if (k == 6 && strncmp(p, "bridge", 6) == 0) {
			char br[64];
			snprintf(br, sizeof br, "%.*s", (int)(n - k - 1), p + k + 1);
			if (!ifname_ok(br, 15))
				PROBLEM("vif \"%s\": bridge \"%s\" is not an interface name", spec, br);
		} else if (k == 3 && strncmp(p, "mac", 3) == 0 && !mac_ok(p + k + 1, n - k - 1)) {
			PROBLEM("vif \"%s\": mac must be six hex octets XX:XX:XX:XX:XX:XX", spec);
		}
		p += n;
		if (*p == ',')
			p++;
	}
}

/* ---- the kernel: Xen's metadata, as the domain builder reads it ---- */

#define KERNEL_MAX (64L << 20) /* microvim's image blob limit */
#define XEN_ELFNOTE_XEN_VERSION 5
#define XEN_ELFNOTE_GUEST_OS 6
#define XEN_ELFNOTE_LOADER 8
#define XEN_ELFNOTE_PHYS32_ENTRY 18

struct xen_meta {
	bool notes;      /* Xen notes in a PT_NOTE segment */
	bool guest_info; /* the legacy __xen_guest section */
	bool phys32;     /* XEN_ELFNOTE_PHYS32_ENTRY: a PVH entry point */
	char loader[32], guest_os[32], xen_ver[32];
	unsigned machine;
};

static bool in_image(size_t len, uint64_t off, uint64_t n) { return off <= len && n <= len - off; }

static void copy_str(char *dst, size_t cap, const unsigned char *src, size_t n)
{
	size_t k = strnlen((const char *)src, n);
	if (k >= cap)
		k = cap - 1;
	memcpy(dst, src, k);
	dst[k] = '\0';
}

/* One PT_NOTE segment: namesz, descsz, type, name and desc each padded to 4 bytes. */
static void parse_notes(const unsigned char *p, size_t len, struct xen_meta *m)
{
	size_t off = 0;
	while (len - off >= 12) {
		uint32_t namesz, descsz, type;
		size_t name_at = off + 12, desc_at;
		memcpy(&namesz, p + off, 4);
		memcpy(&descsz, p + off + 4, 4);
		memcpy(&type, p + off + 8, 4);
		desc_at = name_at + ((namesz + 3u) & ~3u);
		if (namesz > len || descsz > len || desc_at > len || descsz > len - desc_at)
			return;
		if (namesz == 4 && memcmp(p + name_at, "Xen", 4) == 0) {
			m->notes = true;
			if (type == XEN_ELFNOTE_PHYS32_ENTRY)
				m->phys32 = true;
			else if (type == XEN_ELFNOTE_LOADER)
				copy_str(m->loader, sizeof m->loader, p + desc_at, descsz);
			else if (type == XEN_ELFNOTE_GUEST_OS)
				copy_str(m->guest_os, sizeof m->guest_os, p + desc_at, descsz);
			else if (type == XEN_ELFNOTE_XEN_VERSION)
				copy_str(m->xen_ver, sizeof m->xen_ver, p + desc_at, descsz);
		}
		off = desc_at + ((descsz + 3u) & ~3u);
	}
}

/* The legacy "KEY=VALUE,KEY=VALUE" string of a __xen_guest section. */
static void parse_guest_info(const unsigned char *p, size_t len, struct xen_meta *m)
{
	char text[1024], *save = NULL, *item;
	copy_str(text, sizeof text, p, len);
	m->guest_info = true;
	for (item = strtok_r(text, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');
		if (!eq)
			continue;
		*eq++ = '\0';
		if (strcmp(item, "LOADER") == 0)
			snprintf(m->loader, sizeof m->loader, "%s", eq);
		else if (strcmp(item, "GUEST_OS") == 0)
			snprintf(m->guest_os, sizeof m->guest_os, "%s", eq);
		else if (strcmp(item, "XEN_VER") == 0)
			snprintf(m->xen_ver, sizeof m->xen_ver, "%s", eq);
	}
}

/* The section header at `at`: its name offset and, when its contents are inside the image,
 * where they are (size 0 otherwise). false when the header itself is not. */
static bool section_at(const unsigned char *img, size_t len, bool is64, uint64_t at, uint32_t *name, uint64_t *off,
                       uint64_t *size)
{
	if (!in_image(len, at, is64 ? sizeof(Elf64_Shdr) : sizeof(Elf32_Shdr)))
		return false;
	if (is64) {
		Elf64_Shdr sh;
		memcpy(&sh, img + at, sizeof sh);
		*name = sh.sh_name, *off = sh.sh_offset, *size = sh.sh_size;
	} else {
		Elf32_Shdr sh;
		memcpy(&sh, img + at, sizeof sh);
		*name = sh.sh_name, *off = sh.sh_offset, *size = sh.sh_size;
	}
	if (!in_image(len, *off, *size))
		*size = 0;
	return true;
}

/* Reads the ELF headers (32- or 64-bit, little-endian): the machine, the PT_NOTE segments
 * and, when they hold no Xen note, a __xen_guest section. NULL or why it is not ELF. */
static const char *elf_meta(const unsigned char *img, size_t len, struct xen_meta *m)
{
	bool is64;
	uint64_t phoff, shoff, str_off, str_size;
	uint32_t str_name;
	unsigned phnum, phent, shnum, shent, shstrndx;

	if (len < sizeof(Elf32_Ehdr) || memcmp(img, ELFMAG, SELFMAG) != 0)
		return "kernel is not an ELF image";
	if (img[EI_DATA] != ELFDATA2LSB || (img[EI_CLASS] != ELFCLASS32 && img[EI_CLASS] != ELFCLASS64))
		return "corrupted ELF image (not a little-endian ELF32/ELF64)";
	is64 = img[EI_CLASS] == ELFCLASS64;
	if (is64) {
		Elf64_Ehdr e;
		if (len < sizeof e)
			return "corrupted ELF image (truncated header)";
		memcpy(&e, img, sizeof e);
		m->machine = e.e_machine;
		phoff = e.e_phoff, phnum = e.e_phnum, phent = e.e_phentsize;
		shoff = e.e_shoff, shnum = e.e_shnum, shent = e.e_shentsize, shstrndx = e.e_shstrndx;
	} else {
		Elf32_Ehdr e;
		memcpy(&e, img, sizeof e);
		m->machine = e.e_machine;
		phoff = e.e_phoff, phnum = e.e_phnum, phent = e.e_phentsize;
		shoff = e.e_shoff, shnum = e.e_shnum, shent = e.e_shentsize, shstrndx = e.e_shstrndx;
	}
	if (phent < (is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr)) && phnum)
		return "corrupted ELF image (program header size)";
	for (unsigned i = 0; i < phnum; i++) {
		uint64_t at = phoff + (uint64_t)i * phent, off, size;
		uint32_t type;
		if (!in_image(len, at, phent))
			return "corrupted ELF image (program headers past the end)";
		if (is64) {
			Elf64_Phdr ph;
			memcpy(&ph, img + at, sizeof ph);
			type = ph.p_type, off = ph.p_offset, size = ph.p_filesz;
		} else {
			Elf32_Phdr ph;
			memcpy(&ph, img + at, sizeof ph);
			type = ph.p_type, off = ph.p_offset, size = ph.p_filesz;
		}
		if (type == PT_NOTE && in_image(len, off, size))
			parse_notes(img + off, size, m);
	}
	if (m->notes || !shnum || shent < (is64 ? sizeof(Elf64_Shdr) : sizeof(Elf32_Shdr)) || shstrndx >= shnum)
		return NULL;
	if (!section_at(img, len, is64, shoff + (uint64_t)shstrndx * shent, &str_name, &str_off, &str_size))
		return "corrupted ELF image (section headers past the end)";
	for (unsigned i = 0; i < shnum; i++) {
		uint64_t off, size;
		uint32_t name;
		if (!section_at(img, len, is64, shoff + (uint64_t)i * shent, &name, &off, &size))
			return "corrupted ELF image (section headers past the end)";
		if (name < str_size && strncmp((const char *)img + str_off + name, "__xen_guest", str_size - name) == 0)
			parse_guest_info(img + off, size, m);
	}
	return NULL;
}

/* Would Xen's domain builder load this kernel as a guest of this type? */
static void check_kernel(const char *path, const char *type, char *guest_os, size_t guest_os_len)
{
	FILE *f;
	unsigned char *img;
	size_t len;
	const char *why;
	struct xen_meta m = {0};

	if (!path || !type || path[0] != '/' || access(path, R_OK) != 0)
		return; /* said by check_file, or no type to judge by */
	if (!(f = fopen(path, "rb")) || !(img = malloc(KERNEL_MAX + 1))) {
		PROBLEM("kernel: %s", strerror(errno));
		if (f)
			fclose(f);
		return;
	}
	len = fread(img, 1, KERNEL_MAX + 1, f);
	fclose(f);
	if (len > KERNEL_MAX)
		why = "kernel is larger than 64 MiB";
	else
		why = elf_meta(img, len, &m);
	free(img);
	if (why) {
		PROBLEM("kernel: %s", why);
		return;
	}
	snprintf(guest_os, guest_os_len, "%s", m.guest_os[0] ? m.guest_os : "-");
	if (m.machine != EM_386 && m.machine != EM_X86_64) {
		PROBLEM("kernel: unknown image type %u (not x86)", m.machine);
	} else if (strcmp(type, "pvh") == 0) {
		if (!m.phys32)
			PROBLEM("kernel: image not capable of booting inside a HVM container (no XEN_ELFNOTE_PHYS32_ENTRY: "
			        "not a PVH kernel)");
	} else if (!m.notes && !m.guest_info) {
		PROBLEM("kernel: Not a Xen-ELF image: No ELF notes or '__xen_guest' section found");
	} else if (strncmp(m.loader, "generic", 7) != 0 && strncmp(m.guest_os, "linux", 5) != 0) {
		PROBLEM("kernel: Will only load images built for the generic loader or Linux images (Not '%s' and "
		        "'%s')%s", m.loader, m.guest_os,
		        m.phys32 ? ": a PVH-only kernel (PHYS32_ENTRY): boot it as PVH" : "");
	} else if (strncmp(m.xen_ver, "xen-3.0", 7) != 0) {
		PROBLEM("kernel: Xen will only load images built for Xen v3.0 (Not '%s')", m.xen_ver);
	}
}

int main(int argc, char **argv)
{
	XLU_Config *cfg;
	XLU_ConfigList *vifs;
	const char *name, *type, *s, *extra;
	char guest_os[32] = "-";
	long memory = 0, vcpus = 1, v;
	int nvifs, rc;

	if (argc != 2) {
		fprintf(stderr, "usage: xlcheck FILE   (the xl stand-in's config checker)\n");
		return 2;
	}
	file = argv[1];
	if (!(cfg = xlu_cfg_init(stderr, file))) {
		fprintf(stderr, "xlcheck: out of memory\n");
		return 1;
	}
	if ((rc = xlu_cfg_readfile(cfg, file)) != 0) {
		/* libxlutil already said where; after a failed read only destroy is allowed */
		fprintf(stderr, "xlcheck: %s: libxlutil cannot parse it: %s\n", file, strerror(rc));
		xlu_cfg_destroy(cfg);
		return 1;
	}
	check_keys();

	if ((name = get_string(cfg, "name", true))) {
		if (!ifname_ok(name, 63))
			PROBLEM("name \"%s\" must be 1-63 characters [A-Za-z0-9._-]", name);
		else if (strspn(name, "0123456789") == strlen(name))
			PROBLEM("name \"%s\" is all digits: xl would take it for a domain id", name);
	}
	if ((type = get_string(cfg, "type", true)) && strcmp(type, "pv") != 0 && strcmp(type, "pvh") != 0)
		PROBLEM("type \"%s\": a ClickOS-style guest is \"pv\" or \"pvh\"", type);
	s = get_string(cfg, "kernel", true);
	check_file("kernel", s);
	check_kernel(s, type, guest_os, sizeof guest_os);
	check_file("ramdisk", get_string(cfg, "ramdisk", false));
	extra = get_string(cfg, "extra", false);
	get_long(cfg, "memory", true, 1, 16L * 1024 * 1024, &memory);
	if (get_long(cfg, "maxmem", false, 1, 16L * 1024 * 1024, &v) && v < memory)
		PROBLEM("maxmem = %ld is less than memory = %ld", v, memory);
	get_long(cfg, "vcpus", false, 1, 512, &vcpus);
	if (get_long(cfg, "maxvcpus", false, 1, 512, &v) && v < vcpus)
		PROBLEM("maxvcpus = %ld is less than vcpus = %ld", v, vcpus);
	for (const char *const *k = (const char *const[]){"on_poweroff", "on_reboot", "on_crash", "on_watchdog", NULL};
	     *k; k++)
		if ((s = get_string(cfg, *k, false)) && !in_list(actions, s, strlen(s)))
			PROBLEM("%s = \"%s\" is not an xl.cfg action", *k, s);

	rc = xlu_cfg_get_list(cfg, "vif", &vifs, &nvifs, 0);
	if (rc == 0) {
		for (int i = 0; i < nvifs; i++) {
			const char *item = xlu_cfg_get_listitem(vifs, i);
			if (!item)
				PROBLEM("vif[%d] must be a string", i);
			else
				check_vif(item);
		}
	} else if (rc != ESRCH) {
		PROBLEM("vif must be a list of strings");
	}

	if (problems == 0)
		printf("name=%s\ntype=%s\nguest_os=%s\nextra=%s\n", name, type, guest_os, extra ? extra : "");
	xlu_cfg_destroy(cfg);
	return problems ? 1 : 0;
}
