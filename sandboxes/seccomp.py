"""A small seccomp filter for the bwrap backend: the system calls an agent's code never needs.

Namespaces already hide the host; this closes what they leave open (reliability A16-A18, §6): new user
namespaces (`unshare -r` would hand the code a root of its own to probe the kernel with), mount and the
new mount API, ptrace and cross-process memory access, kernel keyrings, BPF, perf, userfaultfd, module
loading, `open_by_handle_at`, Unix sockets (there is no host socket to reach, and abstract sockets would
be the remaining channel), and typing into a terminal with TIOCSTI/TIOCLINUX. Denied calls fail with
EPERM (ENOSYS for clone3, so the C library falls back to clone, whose flags can be checked). System
calls of a foreign ABI (i386, x32) are denied wholesale so they cannot go around the table.

Written as raw classic BPF (struct sock_filter) so no libseccomp is needed; bwrap loads it with
`--seccomp FD`.
"""

from __future__ import annotations

import errno
import os
import platform
import struct

LD_W_ABS = 0x20
JEQ_K = 0x15
JGE_K = 0x35
JSET_K = 0x45
RET_K = 0x06
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000

NR_OFFSET = 0
ARCH_OFFSET = 4
ARG_OFFSET = 16  # low 32 bits of args[i] at 16 + 8 * i (little endian)

AF_UNIX = 1
CLONE_NEWUSER = 0x10000000
TIOCSTI = 0x5412
TIOCLINUX = 0x541C
X32_BIT = 0x40000000

DENIED_NAMES = (
    "unshare", "setns", "mount", "umount2", "pivot_root", "ptrace", "process_vm_readv", "process_vm_writev",
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd", "kexec_load", "init_module",
    "finit_module", "delete_module", "open_by_handle_at", "open_tree", "move_mount", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr",
)

SYSCALLS = {
    "x86_64": {
        "arch": 0xC000003E, "x32": True,
        "clone": 56, "clone3": 435, "socket": 41, "ioctl": 16,
        "unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155, "ptrace": 101,
        "process_vm_readv": 310, "process_vm_writev": 311, "keyctl": 250, "add_key": 248, "request_key": 249,
        "bpf": 321, "perf_event_open": 298, "userfaultfd": 323, "kexec_load": 246, "init_module": 175,
        "finit_module": 313, "delete_module": 176, "open_by_handle_at": 304, "open_tree": 428,
        "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
    },
    "aarch64": {
        "arch": 0xC00000B7, "x32": False,
        "clone": 220, "clone3": 435, "socket": 198, "ioctl": 29,
        "unshare": 97, "setns": 268, "mount": 40, "umount2": 39, "pivot_root": 41, "ptrace": 117,
        "process_vm_readv": 270, "process_vm_writev": 271, "keyctl": 219, "add_key": 217, "request_key": 218,
        "bpf": 280, "perf_event_open": 241, "userfaultfd": 282, "kexec_load": 104, "init_module": 105,
        "finit_module": 273, "delete_module": 106, "open_by_handle_at": 265, "open_tree": 428,
        "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
    },
}


def insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def deny(err: int) -> bytes:
    return insn(RET_K, RET_ERRNO | err)


def load_nr() -> bytes:
    return insn(LD_W_ABS, NR_OFFSET)


def load_arg(index: int) -> bytes:
    return insn(LD_W_ABS, ARG_OFFSET + 8 * index)


def arg_check(nr: int, arg: int, test: int, value: int, err: int) -> list[bytes]:
    """If the call is `nr` and its argument matches `value` (JEQ) or has those bits (JSET): deny."""
    return [
        insn(JEQ_K, nr, 0, 4),  # not this call: skip the block (4 instructions)
        load_arg(arg),
        insn(test, value, 0, 1),
        deny(err),
        load_nr(),
    ]


def program(machine: str | None = None) -> bytes:
    """The filter for this machine's architecture, as bytes for `bwrap --seccomp`."""
    table = SYSCALLS.get(machine or platform.machine())
    if table is None:
        raise OSError(errno.ENOSYS, f"no seccomp table for {machine or platform.machine()}")
    code = [
        insn(LD_W_ABS, ARCH_OFFSET),
        insn(JEQ_K, table["arch"], 1, 0),
        deny(errno.EPERM),  # a foreign ABI
        load_nr(),
    ]
    if table["x32"]:
        code += [insn(JGE_K, X32_BIT, 0, 1), deny(errno.EPERM)]
    code += [insn(JEQ_K, table["clone3"], 0, 1), deny(errno.ENOSYS)]
    code += arg_check(table["clone"], 0, JSET_K, CLONE_NEWUSER, errno.EPERM)
    code += arg_check(table["socket"], 0, JEQ_K, AF_UNIX, errno.EACCES)
    code += arg_check(table["ioctl"], 1, JEQ_K, TIOCSTI, errno.EPERM)
    code += arg_check(table["ioctl"], 1, JEQ_K, TIOCLINUX, errno.EPERM)
    for name in DENIED_NAMES:
        code += [insn(JEQ_K, table[name], 0, 1), deny(errno.EPERM)]
    code.append(insn(RET_K, RET_ALLOW))
    return b"".join(code)


def program_fd() -> int:
    """A memfd holding the filter, positioned at 0, inheritable (for `pass_fds`)."""
    fd = os.memfd_create("agentenv-seccomp", 0)
    os.write(fd, program())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
