"""Parent side of one run: start the helper, feed stdin, read both outputs, enforce the wall
clock and the output cap, kill the tree, and turn what happened into a RunResult."""

from __future__ import annotations

import json
import os
import platform
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import _cgroup
from ._fs import Workspace
from ._types import Limits, RunResult

HELPER = Path(__file__).with_name("_helper.py")
DRAIN_AFTER_EXIT_S = 0.25  # output still buffered when the tree is gone
TERM_GRACE_S = 2.0  # the helper gets this long to kill its namespace before we SIGKILL it
TMPFS_BYTES = 64 << 20  # size of each private tmpfs (/tmp, /var/tmp, /dev/shm)
# /run (and /var/run where it is a directory of its own) hold the host's sockets and
# runtime secrets: the sandbox sees empty ones.
TMPFS_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run", "/var/run")
# (seccomp audit arch, socket syscall number) where the no-unix-sockets filter is known
SECCOMP_SOCKET = {"x86_64": (0xC000003E, 41), "aarch64": (0xC00000B7, 198)}.get(platform.machine())
_SIGNAL_NOTES = {
    signal.SIGXCPU: "CPU time limit",
    signal.SIGXFSZ: "file size limit",
    signal.SIGSEGV: "segmentation fault; the memory limit can cause it",
}


@dataclass(frozen=True)
class Mode:
    """One way of isolating runs; the probe picks the strongest that works here."""

    name: str
    namespaces: tuple[str, ...]  # subset of ("net", "pid", "ipc", "mount")
    userns: bool  # create a user namespace first (to get the others without root)
    drop_uid: bool  # run the program as a fresh unprivileged uid (needs root)
    drop_caps: bool  # strip every capability before exec

    def isolation(self, network: bool) -> tuple[str, ...]:
        names = ["pgroup", "rlimits"]
        names += ["userns"] if self.userns else []
        names += [f"{ns}ns" for ns in self.namespaces if not (ns == "net" and network)]
        names += ["uid"] if self.drop_uid else []
        names += ["nounix"] if SECCOMP_SOCKET and not network else []
        return tuple(names)


def _own_task_count() -> int:
    """Processes + threads of our real uid: RLIMIT_NPROC counts them against the program
    when it runs as our own uid (no per-sandbox uid, no user namespace)."""
    uid, total = str(os.getuid()), 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("Uid", "").split()[:1] == [uid]:
            total += int(fields.get("Threads", "1"))
    return total


def launch(
    argv: Sequence[str],
    *,
    ws: Workspace,
    mode: Mode,
    limits: Limits,
    env: Mapping[str, str],
    network: bool,
    stdin: bytes | None,
    use_memcg: bool,
) -> RunResult:
    isolation = mode.isolation(network)
    start = time.monotonic()

    def error(detail: str) -> RunResult:
        return RunResult(
            "sandbox_error", None, "", "", time.monotonic() - start, False, isolation, detail
        )

    if not argv:
        return error("empty argv")
    memcg = None
    if use_memcg and limits.tree_memory_bytes is not None:
        memcg = _cgroup.create(limits.tree_memory_bytes)
        if memcg is None:
            return error("could not create the memory cgroup")
        isolation += ("memcg",)
    extra = 0 if (mode.drop_uid or mode.userns or os.getuid() == 0) else _own_task_count()
    config = {
        "argv": list(argv),
        "env": dict(env),
        "cwd": str(ws.work),
        "root": str(ws.root),
        "namespaces": [ns for ns in mode.namespaces if not (ns == "net" and network)],
        "userns": mode.userns,
        "drop": [ws.owner, ws.owner] if mode.drop_uid else None,
        "drop_caps": mode.drop_caps,
        "rlimits": limits.rlimits(extra_processes=extra),
        "memcg": str(memcg) if memcg else None,
        "tmpfs": list(TMPFS_DIRS),
        "deny_unix": None if network else SECCOMP_SOCKET,
        "tmpfs_bytes": TMPFS_BYTES,
    }
    try:
        result = _run_helper(config, stdin, limits, start, isolation)
    finally:
        if memcg is not None:
            oom = _cgroup.oom_kills(memcg)
            _cgroup.remove(memcg)
    if memcg is not None and oom and result.status in ("signal", "error"):
        result.detail += f" (memory cgroup limit {limits.tree_memory_bytes} bytes: OOM kill)"
    return result


def _run_helper(
    config: dict, stdin: bytes | None, limits: Limits, start: float, isolation: tuple[str, ...]
) -> RunResult:
    status_r, status_w = os.pipe()
    config_fd = os.memfd_create("paperlab-sandbox-config")
    try:
        os.write(config_fd, json.dumps(config).encode())
        os.lseek(config_fd, 0, os.SEEK_SET)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", str(HELPER), str(status_w), str(config_fd)],
                stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(status_w, config_fd),
                process_group=0,
                env={},
                cwd="/",
            )
        except OSError as exc:
            os.close(status_r)
            wall = time.monotonic() - start
            return RunResult("sandbox_error", None, "", "", wall, False, isolation, str(exc))
    finally:
        os.close(status_w)
        os.close(config_fd)
    pidfd = os.pidfd_open(proc.pid)
    out, err = bytearray(), bytearray()
    reason = "interrupted"  # if the caller is interrupted (KeyboardInterrupt...), still kill
    try:
        reason = _pump(proc, pidfd, stdin, start + limits.wall_s, limits.output_bytes, out, err)
    finally:
        if reason is not None:
            _terminate(proc.pid, pidfd)
        try:  # the helper is dead but unreaped, so its pid still names our process group
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
        wall = time.monotonic() - start
        status = _read_status(status_r)
        os.close(pidfd)
        os.close(status_r)
        for f in (proc.stdin, proc.stdout, proc.stderr):
            if f is not None:
                f.close()
    cap = limits.output_bytes
    truncated = len(out) > cap or len(err) > cap
    text = [bytes(b[:cap]).decode("utf-8", errors="replace") for b in (out, err)]
    kind, code, detail = _classify(reason, status, proc.returncode, limits)
    return RunResult(kind, code, text[0], text[1], wall, truncated, isolation, detail)


def _pump(proc, pidfd, stdin, deadline, cap, out, err) -> str | None:
    """Until the helper exits: write stdin, read stdout/stderr. Returns why we must kill it
    ("timeout", "output_limit") or None when it exited on its own."""
    sel = selectors.DefaultSelector()
    sel.register(pidfd, selectors.EVENT_READ, "exit")
    for f, buf in ((proc.stdout, out), (proc.stderr, err)):
        os.set_blocking(f.fileno(), False)
        sel.register(f.fileno(), selectors.EVENT_READ, buf)
    pending = memoryview(stdin or b"")
    if proc.stdin is not None:
        if pending:
            os.set_blocking(proc.stdin.fileno(), False)
            sel.register(proc.stdin.fileno(), selectors.EVENT_WRITE, "stdin")
        else:
            proc.stdin.close()
    exited_at = None
    try:
        while True:
            now = time.monotonic()
            outputs_open = any(isinstance(k.data, bytearray) for k in sel.get_map().values())
            if exited_at is not None and (not outputs_open or now > exited_at + DRAIN_AFTER_EXIT_S):
                return None
            if exited_at is None and now >= deadline:
                return "timeout"
            limit = deadline if exited_at is None else exited_at + DRAIN_AFTER_EXIT_S
            for key, _ in sel.select(max(0.0, limit - now)):
                if key.data == "exit":
                    exited_at = time.monotonic()
                    sel.unregister(pidfd)
                elif key.data == "stdin":
                    try:
                        pending = pending[os.write(key.fd, pending[: 1 << 16]) :]
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:
                        pending = pending[:0]
                    if not pending:
                        sel.unregister(key.fd)
                        proc.stdin.close()
                else:
                    try:
                        chunk = os.read(key.fd, 1 << 16)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        sel.unregister(key.fd)
                    key.data.extend(chunk)
                    if len(key.data) > cap:
                        return "output_limit"
    finally:
        sel.close()


def _wait_exit(pidfd: int, timeout: float) -> bool:
    with selectors.DefaultSelector() as sel:
        sel.register(pidfd, selectors.EVENT_READ)
        return bool(sel.select(timeout))


def _terminate(pid: int, pidfd: int) -> None:
    """SIGTERM asks the helper to SIGKILL the namespace's init (so the kernel kills every
    process inside) and to kill its remaining descendants; SIGKILL the group if it hangs."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not _wait_exit(pidfd, TERM_GRACE_S):
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        _wait_exit(pidfd, TERM_GRACE_S)


def _read_status(fd: int) -> list[str]:
    os.set_blocking(fd, False)
    data = b""
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:  # a writer survived: whatever it wrote so far is all we take
            break
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", errors="replace").splitlines()


def _classify(
    reason: str | None, status: list[str], helper_rc: int | None, limits: Limits
) -> tuple[str, int | None, str]:
    """(status, returncode, detail) from our kill reason and the helper's status lines."""
    if reason == "timeout":
        return "timeout", None, f"killed after the wall-clock limit of {limits.wall_s:g} s"
    if reason == "output_limit":
        return "output_limit", None, f"killed: output beyond {limits.output_bytes} bytes"
    for line in status:
        if line.startswith("E "):
            return "sandbox_error", None, line[2:]
    for line in status:
        kind, _, value = line.partition(" ")
        if kind == "X" and value.isdigit():
            code = int(value)
            return ("ok", 0, "") if code == 0 else ("error", code, f"exit code {code}")
        if kind == "S" and value.isdigit():
            num = int(value)
            try:
                name = signal.Signals(num).name
            except ValueError:
                name = f"signal {num}"
            note = _SIGNAL_NOTES.get(num)
            return "signal", -num, f"killed by {name}" + (f" ({note})" if note else "")
    return "sandbox_error", None, f"the sandbox helper ended without a status (rc {helper_rc})"
