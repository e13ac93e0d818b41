/* LD_PRELOAD shim that makes a process see a CPU without AVX-512, AMX, AVX-VNNI or AVX512_BF16:
 * an AVX2 + FMA machine like the AMD EPYC (Zen 3) most users run, for benchmarks on a newer Xeon.
 * With CPUID_MASK=avx512 it keeps AVX-512 (F, DQ, CD, BW, VL, VNNI) and drops only bf16, fp16 and
 * AMX: a Cascade Lake Xeon.
 *
 * Why: ONNX Runtime's MLAS picks its kernels from CPUID and has no switch to cap the ISA (oneDNN's
 * ONEDNN_MAX_CPU_ISA covers OpenVINO and torch's oneDNN paths only). Linux's CPUID faulting
 * (arch_prctl ARCH_SET_CPUID, the mechanism rr uses; needs the `cpuid_fault` CPU flag) turns every
 * CPUID instruction of this process into SIGSEGV; the handler runs the real CPUID with faulting
 * briefly off, clears the feature bits, and steps over the instruction. The setting is inherited
 * by threads and forks, and reset by execve (the preload sets it again).
 *
 * Limits: the vendor string and family stay Intel's (MKL's vendor-specific paths are not those of
 * an AMD CPU); XGETBV still reports the OS-enabled AVX-512 state, which libraries only consult
 * after CPUID said the feature exists. Build: gcc -O2 -shared -fPIC -o cpuid_mask.so cpuid_mask.c
 * Use: LD_PRELOAD=$PWD/cpuid_mask.so python ...   (CPUID_MASK_VERBOSE=1 reports each fault)
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <asm/prctl.h>

#ifndef ARCH_SET_CPUID
#define ARCH_SET_CPUID 0x1012
#endif

static struct sigaction previous;
static int verbose;
static int keep_avx512;
static volatile long faults;

static void set_faulting(int on) { syscall(SYS_arch_prctl, ARCH_SET_CPUID, on ? 0 : 1); }

static void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

static void mask(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    if (keep_avx512) {
        if (leaf == 7 && sub == 0) r[3] &= ~((1u << 22) | (1u << 23) | (1u << 24) | (1u << 25));
        if (leaf == 7 && sub == 1) { r[0] &= ~((1u << 5) | (1u << 21)); r[3] &= ~(1u << 8); }
        if (leaf == 0xD && sub == 0) r[0] &= ~((1u << 17) | (1u << 18));
        if (leaf == 0x1D || leaf == 0x1E) r[0] = r[1] = r[2] = r[3] = 0;
        return;
    }
    if (leaf == 7 && sub == 0) {
        /* EBX: AVX512F 16, DQ 17, IFMA 21, PF 26, ER 27, CD 28, BW 30, VL 31 */
        r[1] &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) | (1u << 31));
        /* ECX: VBMI 1, VBMI2 6, GFNI 8 (Zen 4 and later), VNNI 11, BITALG 12, VPOPCNTDQ 14 */
        r[2] &= ~((1u << 1) | (1u << 6) | (1u << 8) | (1u << 11) | (1u << 12) | (1u << 14));
        /* EDX: 4VNNIW 2, 4FMAPS 3, VP2INTERSECT 8, AMX_BF16 22, AVX512_FP16 23, AMX_TILE 24, AMX_INT8 25 */
        r[3] &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25));
    } else if (leaf == 7 && sub == 1) {
        /* EAX: AVX_VNNI 4, AVX512_BF16 5, AMX_FP16 21, AVX_IFMA 23; EDX: AVX_VNNI_INT8 4, AVX_NE_CONVERT 5, AMX_COMPLEX 8, AVX10 19 */
        r[0] &= ~((1u << 4) | (1u << 5) | (1u << 21) | (1u << 23));
        r[3] &= ~((1u << 4) | (1u << 5) | (1u << 8) | (1u << 19));
    } else if (leaf == 0xD && sub == 0) {
        /* XSAVE components supported: drop opmask/ZMM (5-7) and AMX tile state (17, 18) */
        r[0] &= ~((1u << 5) | (1u << 6) | (1u << 7) | (1u << 17) | (1u << 18));
    } else if (leaf == 0x1D || leaf == 0x1E || leaf == 0x24) {
        r[0] = r[1] = r[2] = r[3] = 0; /* AMX tile / TMUL / AVX10 information */
    }
}

static void on_segv(int sig, siginfo_t *info, void *context) {
    ucontext_t *uc = context;
    unsigned char *ip = (unsigned char *)uc->uc_mcontext.gregs[REG_RIP];
    if (ip[0] == 0x0f && ip[1] == 0xa2) {
        uint32_t leaf = (uint32_t)uc->uc_mcontext.gregs[REG_RAX];
        uint32_t sub = (uint32_t)uc->uc_mcontext.gregs[REG_RCX];
        uint32_t r[4];
        set_faulting(0);
        cpuid(leaf, sub, r);
        set_faulting(1);
        mask(leaf, sub, r);
        uc->uc_mcontext.gregs[REG_RAX] = r[0];
        uc->uc_mcontext.gregs[REG_RBX] = r[1];
        uc->uc_mcontext.gregs[REG_RCX] = r[2];
        uc->uc_mcontext.gregs[REG_RDX] = r[3];
        uc->uc_mcontext.gregs[REG_RIP] += 2;
        faults++;
        if (verbose) {
            char line[96];
            int n = snprintf(line, sizeof line, "cpuid_mask: leaf %#x.%u\n", leaf, sub);
            if (write(2, line, n) < 0) {}
        }
        return;
    }
    /* A real fault: hand it to whoever had SIGSEGV before, or die as without us. */
    if (previous.sa_flags & SA_SIGINFO && previous.sa_sigaction) {
        previous.sa_sigaction(sig, info, context);
    } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
        previous.sa_handler(sig);
    } else {
        signal(SIGSEGV, SIG_DFL);
        raise(SIGSEGV);
    }
}

__attribute__((constructor)) static void install(void) {
    verbose = getenv("CPUID_MASK_VERBOSE") != NULL;
    keep_avx512 = getenv("CPUID_MASK") != NULL && strcmp(getenv("CPUID_MASK"), "avx512") == 0;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_segv;
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&action.sa_mask);
    sigaction(SIGSEGV, &action, &previous);
    if (syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) != 0) {
        perror("cpuid_mask: ARCH_SET_CPUID (no cpuid_fault on this CPU?)");
        exit(70);
    }
}
