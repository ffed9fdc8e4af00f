"""Child side of the sandbox: ``python -I -S _helper.py STATUS_FD CONFIG_FD``.

Runs as a separate process (never imported by paperlab), standard library only, so that no
namespace or privilege change ever happens in the caller's (multi-threaded) process.

Process layout::

    paperlab (caller)
      └─ outer  this script: joins the memory cgroup, unshares the namespaces, is a
         │      child subreaper; on SIGTERM it SIGKILLs `inner`; after `inner` is gone it
         │      kills and reaps every descendant that is left, then exits.
         └─ inner   (pid 1 of the new PID namespace, still root) sets up the mounts,
            │       forks the program, reaps, writes the program's status, exits; the
            │       kernel then kills every process left in the namespace.
            └─ program  (per-sandbox uid, no capabilities, no_new_privs, rlimits)

Status lines written to STATUS_FD: ``X <code>`` (exited), ``S <signal>`` (killed by a
signal), ``E <message>`` (sandbox error: setup failed or the program could not be executed).
"""

import ctypes
import json
import os
import resource
import signal
import sys
import time

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACE_FLAGS = {
    "net": CLONE_NEWNET,
    "pid": CLONE_NEWPID,
    "mount": CLONE_NEWNS,
    "ipc": CLONE_NEWIPC,
}
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, AT_RECURSIVE, AT_FDCWD = 1, 2, 0x8000, -100
SYS_MOUNT_SETATTR = 442  # same number on every architecture (syscalls >= 424 are unified)
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_SECUREBITS = 1, 24, 28
PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 36, 38, 47
SECBIT_NOROOT, SECBIT_NOROOT_LOCKED, PR_CAP_AMBIENT_CLEAR_ALL = 1, 2, 4
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
# classic BPF opcodes for the seccomp filter (linux/filter.h, linux/seccomp.h)
BPF_LD_W_ABS, BPF_JEQ_K, BPF_JGE_K, BPF_RET_K = 0x20, 0x15, 0x35, 0x06
SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, EACCES, AF_UNIX = 0x7FFF0000, 0x00050000, 13, 1
X32_SYSCALL_BIT = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)
_terminate = False
_inner = 0


class _MountAttr(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in ("set", "clr", "propagation", "userns_fd")]


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _b(s):
    return None if s is None else os.fsencode(s)


def _mount(source, target, fstype, flags, data=None):
    ret = _libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data))
    _check(ret, f"mount {target}")


def _mount_setattr(path, set_=0, clear=0, recursive=True):
    attr = _MountAttr(set_, clear, 0, 0)
    flags = AT_RECURSIVE if recursive else 0
    ret = _libc.syscall(
        ctypes.c_long(SYS_MOUNT_SETATTR),
        ctypes.c_int(AT_FDCWD),
        _b(path),
        ctypes.c_uint(flags),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    _check(ret, f"mount_setattr {path}")


def _prctl(option, arg):
    _check(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), f"prctl {option}")


def _write_status(fd, line):
    try:
        os.write(fd, (line.replace("\n", " ") + "\n").encode("utf-8", "replace"))
    except OSError:
        pass


def _set_oom_score_adj(value):
    """-1000: the memory cgroup's OOM killer picks the program, never the helpers (whose
    death would lose the status); the program is reset to 0. Needs root; else a no-op."""
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))
    except OSError:
        pass


def _enter_user_namespace(uid, gid):
    _check(_libc.unshare(CLONE_NEWUSER), "unshare(CLONE_NEWUSER)")
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"0 {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"0 {gid} 1")


def _setup_mounts(cfg):
    """Private propagation, fresh /proc, everything read-only and nosuid except the
    sandbox directory (bind-mounted back read-write) and private tmpfs on the tmp dirs."""
    root = cfg["root"]
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    if "pid" in cfg["namespaces"]:
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)  # reachable even once /tmp is covered
    _mount_setattr("/", set_=MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID)
    for path in cfg["tmpfs"]:
        if os.path.isdir(path) and not os.path.islink(path):
            opts = f"size={cfg['tmpfs_bytes']},nr_inodes=16384,mode=1777"
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, opts)
    os.makedirs(root, exist_ok=True)
    _mount(f"/proc/self/fd/{root_fd}", root, None, MS_BIND)
    _mount_setattr(root, clear=MOUNT_ATTR_RDONLY, recursive=False)
    os.close(root_fd)


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def _deny_unix_sockets(arch, socket_nr):
    """A seccomp filter: ``socket(AF_UNIX, ...)`` fails with EACCES, every other call is
    allowed, and so is everything the program does not ask for. The network namespace hides
    abstract sockets but not the ones bound to a path (a world-writable socket under /run, a
    container runtime's, a desktop bus's), and a read-only mount does not stop a connect().
    ``socketpair`` stays allowed: it reaches nothing outside. A call made through a foreign
    ABI (x32, or a 32-bit program on a 64-bit kernel) fails with EACCES too, so nobody goes
    around the filter by changing the calling convention."""
    deny = SECCOMP_RET_ERRNO | EACCES
    prog = [
        (BPF_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        (BPF_JEQ_K, 1, 0, arch),
        (BPF_RET_K, 0, 0, deny),
        (BPF_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
        (BPF_JGE_K, 0, 1, X32_SYSCALL_BIT),
        (BPF_RET_K, 0, 0, deny),
        (BPF_JEQ_K, 0, 3, socket_nr),
        (BPF_LD_W_ABS, 0, 0, 16),  # low 32 bits of args[0] (little-endian): the domain
        (BPF_JEQ_K, 0, 1, AF_UNIX),
        (BPF_RET_K, 0, 0, deny),
        (BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
    ]
    filters = (_SockFilter * len(prog))(*[_SockFilter(*ins) for ins in prog])
    fprog = _SockFprog(len(prog), filters)
    ret = _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0)
    _check(ret, "seccomp filter")


def _drop_capabilities():
    """No capability survives exec, even for uid 0 inside a user namespace."""
    _prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED)
    for cap in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0) != 0:
            break  # EINVAL: past the last capability the kernel knows
    _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient caps")


def _execvpe(argv, env):
    """execvp with the program's PATH and a useful error (os.execvpe imports lazily, and
    the stdlib may be unreadable once the uid is dropped)."""
    if "/" in argv[0]:
        os.execve(argv[0], argv, env)
    problems = []
    for d in env.get("PATH", "/usr/bin:/bin").split(":"):
        path = os.path.join(d or ".", argv[0])
        try:
            os.execve(path, argv, env)
        except (FileNotFoundError, NotADirectoryError):
            pass
        except OSError as exc:
            problems.append(f"{path}: {exc.strerror}")
    more = f"; ... {len(problems) - 2} more" if len(problems) > 2 else ""
    raise OSError("not found on PATH" + "".join(f"; {p}" for p in problems[:2]) + more)


def _setrlimit(which, soft, hard):
    """setrlimit; a hard limit we may not raise (no root) stays, and caps the request."""
    try:
        resource.setrlimit(which, (soft, hard))
    except (ValueError, OSError):
        inf, cur = resource.RLIM_INFINITY, resource.getrlimit(which)[1]
        hard = cur if hard == inf else hard if cur == inf else min(hard, cur)
        soft = hard if soft == inf else soft if hard == inf else min(soft, hard)
        resource.setrlimit(which, (soft, hard))


def _exec_program(cfg, status_fd):
    """In the forked program process: drop privileges, apply limits, exec. Never returns."""
    try:
        for sig in signal.valid_signals():
            if sig not in (signal.SIGKILL, signal.SIGSTOP):
                try:
                    signal.signal(sig, signal.SIG_DFL)
                except (OSError, ValueError):
                    pass
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        _set_oom_score_adj(0)
        for name, (soft, hard) in cfg["rlimits"].items():
            _setrlimit(getattr(resource, "RLIMIT_" + name), soft, hard)
        if cfg["drop_caps"]:
            _drop_capabilities()
        if cfg["drop"]:
            uid, gid = cfg["drop"]
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            if 0 in os.getresuid() or 0 in os.getresgid():
                raise OSError("privileges were not dropped")
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        if cfg["deny_unix"]:
            _deny_unix_sockets(*cfg["deny_unix"])
        os.chdir(cfg["cwd"])
        _execvpe(cfg["argv"], cfg["env"])
    except BaseException as exc:  # noqa: BLE001 - report anything, then die
        _write_status(status_fd, f"E cannot execute {cfg['argv'][0]!r}: {exc}")
    os._exit(127)


def _inner_main(cfg, status_fd):
    """pid 1 of the PID namespace (or a plain child without one). Never returns."""
    try:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        for sig in (signal.SIGINT, signal.SIGTERM):  # as pid 1: default = immune from inside
            signal.signal(sig, signal.SIG_DFL)
        if "mount" in cfg["namespaces"]:
            _setup_mounts(cfg)
        program = os.fork()
        if program == 0:
            _exec_program(cfg, status_fd)
        while True:
            pid, status = os.waitpid(-1, 0)
            if pid == program:
                break
        if os.WIFSIGNALED(status):
            _write_status(status_fd, f"S {os.WTERMSIG(status)}")
        else:
            _write_status(status_fd, f"X {os.WEXITSTATUS(status)}")
    except BaseException as exc:  # noqa: BLE001
        _write_status(status_fd, f"E sandbox setup failed: {exc}")
    os._exit(0)


def _children(proc_fd, pid):
    """Children of ``pid`` (all its threads), read through the host's /proc (an fd opened
    before the namespace's own /proc was mounted over it)."""
    kids = []
    try:
        task_fd = os.open(f"{pid}/task", os.O_RDONLY | os.O_DIRECTORY, dir_fd=proc_fd)
    except OSError:
        return kids
    try:
        tids = os.listdir(task_fd)
    finally:
        os.close(task_fd)
    for tid in tids:
        try:
            fd = os.open(f"{pid}/task/{tid}/children", os.O_RDONLY, dir_fd=proc_fd)
        except OSError:
            continue
        try:
            kids += [int(k) for k in os.read(fd, 1 << 20).split()]
        finally:
            os.close(fd)
    return kids


def _kill_descendants(proc_fd):
    """SIGKILL and reap every remaining descendant. Each pass goes top-down and kills a
    process before listing its children (with SIGKILL pending it cannot fork any more), so
    a pass only misses orphans re-parented to us (we are their subreaper) meanwhile."""
    while True:
        todo = _children(proc_fd, os.getpid())
        while todo:
            pid = todo.pop()
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            todo += _children(proc_fd, pid)
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
            time.sleep(0.001)  # children left, none exited yet
        except ChildProcessError:  # no child left, so no descendant either
            return


def _on_sigterm(signum, frame):
    global _terminate
    _terminate = True
    if _inner:  # still unreaped, so the pid cannot have been reused
        os.kill(_inner, signal.SIGKILL)


def main():
    global _inner
    signal.signal(signal.SIGTERM, _on_sigterm)
    status_fd, config_fd = int(sys.argv[1]), int(sys.argv[2])
    os.set_inheritable(status_fd, False)
    with os.fdopen(config_fd, "rb") as f:
        cfg = json.loads(f.read())
    proc_fd = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)
    try:
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        _set_oom_score_adj(-1000)
        if cfg["memcg"]:
            with open(os.path.join(cfg["memcg"], "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
        if cfg["userns"]:
            _enter_user_namespace(os.getuid(), os.getgid())
        unshare = 0
        for name in cfg["namespaces"]:
            unshare |= NAMESPACE_FLAGS[name]
        if unshare:
            _check(_libc.unshare(unshare), "unshare")
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
    except BaseException as exc:  # noqa: BLE001
        _write_status(status_fd, f"E sandbox setup failed: {exc}")
        sys.exit(1)
    if _terminate:
        sys.exit(1)
    inner = os.fork()
    if inner == 0:
        _inner_main(cfg, status_fd)
    _inner = inner
    if _terminate:
        os.kill(inner, signal.SIGKILL)
    os.waitid(os.P_PID, inner, os.WEXITED | os.WNOWAIT)
    _inner = 0
    os.waitpid(inner, 0)
    _kill_descendants(proc_fd)


if __name__ == "__main__":
    main()
