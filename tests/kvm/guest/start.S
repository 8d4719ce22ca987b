/* 64-bit entry of the Linux boot protocol: %rsi holds the zero page. */
    .section .text.start, "ax"
    .globl _start
_start:
    lea stack_top(%rip), %rsp
    mov %rsi, %rdi
    call guest_main
1:  hlt
    jmp 1b

    .bss
    .balign 16
    .space 16384
stack_top:
