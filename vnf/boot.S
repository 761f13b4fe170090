/* boot.S — the two ways into the sample Micro-VNF, both in 32-bit protected mode with
 * paging off, flat segments and interrupts disabled:
 *   PVH (Xen's XEN_ELFNOTE_PHYS32_ENTRY; QEMU -M microvm/pc, Firecracker, Xen PVH):
 *       %ebx = physical address of struct hvm_start_info
 *   multiboot v1 (QEMU -M pc, GRUB): %eax = 0x2BADB002, %ebx = multiboot info
 * Each sets up a stack and calls vnf_main(protocol, info); vnf_main never returns. */

#define MULTIBOOT_MAGIC 0x1BADB002
#define MULTIBOOT_FLAGS 0x00000000	/* nothing needed: the ELF headers say where to load */

	.section .multiboot, "a"
	.balign 4
	.long MULTIBOOT_MAGIC
	.long MULTIBOOT_FLAGS
	.long -(MULTIBOOT_MAGIC + MULTIBOOT_FLAGS)

/* ELF note: namesz, descsz, type, "Xen\0", desc = the 32-bit PVH entry point. */
	.section .note.Xen, "a", @note
	.balign 4
	.long 4
	.long 4
	.long 18		/* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.balign 4
	.long pvh_start

	.text
	.code32
	.globl _start
_start:				/* ELF entry: multiboot */
	cli
	movl $stack_top, %esp
	pushl %ebx		/* info */
	pushl $1		/* VNF_BOOT_MULTIBOOT */
	call vnf_main
	jmp halt

	.globl pvh_start
pvh_start:
	cli
	movl $stack_top, %esp
	pushl %ebx		/* info */
	pushl $2		/* VNF_BOOT_PVH */
	call vnf_main
halt:
	cli
	hlt
	jmp halt

	.bss
	.balign 16
stack:
	.skip 8192
stack_top:
	.section .note.GNU-stack, "", @progbits
