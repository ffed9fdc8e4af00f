"""Run untrusted, model-generated programs (any language) with bounded damage.

    with Sandbox(limits=Limits(wall_s=5)) as sb:
        sb.write("main.c", source)
        if sb.run(["gcc", "-O2", "-o", "main", "main.c"]).passed:
            result = sb.run(["./main"], stdin="3 4\\n")

Isolation model (as root, which is how CI and the McEval harness run). Every run starts a
small helper (``_helper.py``, a separate Python process, so no namespace or privilege change
ever happens in the caller) that:

* joins a fresh **memory cgroup** under our own cgroup (``Limits.tree_memory_bytes`` caps
  RSS + page cache + tmpfs of the whole tree; ``RLIMIT_AS`` alone is per process);
* unshares **network** (no interface but a down loopback: no connection in or out, unless
  ``network=True``), **IPC**, **mount** and **PID** namespaces;
* as pid 1 of the new PID namespace: makes the whole filesystem **read-only and nosuid**
  (recursive ``mount_setattr``), mounts a fresh ``/proc`` and private size-capped tmpfs on
  ``/tmp``, ``/var/tmp``, ``/dev/shm``, ``/run``, and bind-mounts the sandbox directory back
  read-write (same path inside and out). Nothing the program writes outside it survives;
* forks the program, which drops to a **fresh uid/gid per sandbox** (from 2,000,000,000 up;
  no capabilities, no supplementary groups, ``no_new_privs``) and applies the **rlimits**
  (CPU, address space, processes, file size, open files, no core). A fresh uid matters:
  ``RLIMIT_NPROC`` counts processes per real uid and is not enforced for root, so a fork
  bomb is bounded and concurrent sandboxes do not share (or see) each other's budget;
* installs a **seccomp filter** that refuses ``socket(AF_UNIX, ...)`` (unless
  ``network=True``): a read-only mount does not stop a ``connect()`` to a host socket bound
  to a path, and the network namespace hides only abstract ones;
* the run ends when the program's main process exits: pid 1 exits and the kernel kills
  everything left in the namespace (background and double-forked processes included).

The caller enforces the wall clock (killing the namespace's init kills the tree; SIGTERM
handlers are irrelevant), reads stdout/stderr concurrently and kills the run once a stream
exceeds ``Limits.output_bytes``. The environment is scrubbed: PATH (the caller's, minus
directories the sandbox cannot reach: not searchable by its uid, or under the tmp dirs its
mount namespace covers), HOME (= ``path``), LANG/LC_ALL=C.UTF-8, TMPDIR
(a private dir next to ``path``) plus the caller's ``env``; nothing else is inherited.

Degraded modes, chosen by probing once (``isolation_report()``; ``paperlab mceval doctor``):
not root but user namespaces work -> the same namespaces and read-only filesystem, with all
capabilities dropped, but the program runs as your own uid (``uid`` missing); neither ->
process group + subreaper, rlimits, scrubbed environment, timeouts and output caps only
(the program can then read/write your files and signal your processes).
``RunResult.isolation`` always lists what was in force for that run.

Not covered: the kernel itself (the only seccomp rule is the one above; this is not a VM);
reading host files that are world-readable (there is no network to send them anywhere, only
stdout); disk use inside the sandbox directory (bounded only by ``file_bytes`` per file and
the time limit); toolchains under directories the sandbox uid cannot reach (e.g.
``/root/.cargo``). Language runtimes: the JVM needs ``memory_bytes=None`` (it reserves far
more address space than it uses; the memory cgroup still caps it) and ~20+ threads
(``processes``; more on many cores).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from . import _probe
from ._fs import Workspace, allocate_uid, covered_by_tmpfs, remove_stale, traversable_by_others
from ._launch import TMPFS_DIRS, launch
from ._types import DEFAULT_LIMITS, STATUSES, Limits, RunResult

__all__ = [
    "DEFAULT_LIMITS",
    "STATUSES",
    "Limits",
    "RunResult",
    "Sandbox",
    "isolation_report",
    "program_path",
    "remove_stale_workspaces",
    "run_program",
]

_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def isolation_report() -> list[tuple[str, bool, str]]:
    """(feature, available, detail) for every protection; probed once per process."""
    return _probe.report()


def remove_stale_workspaces() -> list[Path]:
    """Remove the sandbox directories of processes that died without cleaning up (a kill -9);
    done once per process automatically, on the first sandbox. Returns what was removed."""
    return remove_stale()


def program_path() -> str:
    """The PATH sandboxed programs get: the caller's minus the directories the sandbox cannot
    reach: those its uid may not search, and those under ``/tmp``, ``/var/tmp`` or
    ``/dev/shm``, which its mount namespace replaces with empty tmpfs (a virtualenv under
    /tmp). Check toolchains with ``shutil.which(tool, path=program_path())``."""
    path = os.environ.get("PATH", _DEFAULT_PATH).split(os.pathsep)
    mode = _probe.system().mode
    if mode.drop_uid or "mount" in mode.namespaces:
        if mode.drop_uid:
            path = [d for d in path if d and traversable_by_others(d)]
        if "mount" in mode.namespaces:
            path = [d for d in path if d and not covered_by_tmpfs(d, TMPFS_DIRS)]
        path = path or [_DEFAULT_PATH]
    return os.pathsep.join(dict.fromkeys(path))


class Sandbox:
    """A fresh directory in which several runs (compile, then run) share files.

    A context manager: the directory and everything in it is removed on exit, always.
    """

    def __init__(
        self,
        *,
        limits: Limits = DEFAULT_LIMITS,
        network: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.limits = limits
        self.network = network
        self.env = dict(env or {})
        for key, value in self.env.items():
            if not key or "=" in key or "\0" in key + value:
                raise ValueError(f"invalid environment variable {key!r}")
        self._ws: Workspace | None = None

    def __enter__(self) -> Sandbox:
        system = _probe.system()
        self._mode, self._memcg = system.mode, system.memcg
        self._path_env = program_path()
        self._ws = Workspace(allocate_uid() if self._mode.drop_uid else None)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Remove the directory (runs are synchronous: no process of ours is left)."""
        if self._ws is not None:
            self._ws.remove()
            self._ws = None

    def _workspace(self) -> Workspace:
        if self._ws is None:
            raise RuntimeError("use the Sandbox as a context manager: `with Sandbox() as sb:`")
        return self._ws

    @property
    def path(self) -> Path:
        """The working directory of every run (also its HOME)."""
        return self._workspace().work

    @property
    def uid(self) -> int:
        """The uid the programs run as (a fresh one per sandbox when running as root)."""
        return self._workspace().owner or os.getuid()

    def write(self, name: str, content: str | bytes, *, executable: bool = False) -> Path:
        """Write ``path/name``; ``name`` must be relative without '..' (else ValueError)."""
        return self._workspace().write(name, content, executable)

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: str | bytes | None = None,
        limits: Limits | None = None,
    ) -> RunResult:
        """Run ``argv`` (looked up on PATH) in ``path``; never raises for program failures."""
        ws = self._workspace()
        env = {
            "PATH": self._path_env,
            "HOME": str(ws.work),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "TMPDIR": str(ws.tmp),
            **self.env,
        }
        data = stdin.encode() if isinstance(stdin, str) else stdin
        return launch(
            list(argv),
            ws=ws,
            mode=self._mode,
            limits=limits or self.limits,
            env=env,
            network=self.network,
            stdin=data,
            use_memcg=self._memcg,
        )


def run_program(
    argv: Sequence[str],
    *,
    files: Mapping[str, str | bytes] | None = None,
    stdin: str | bytes | None = None,
    limits: Limits = DEFAULT_LIMITS,
    network: bool = False,
    env: Mapping[str, str] | None = None,
) -> RunResult:
    """One-shot: write ``files`` into a fresh sandbox, run ``argv`` there, clean up."""
    with Sandbox(limits=limits, network=network, env=env) as sb:
        for name, content in (files or {}).items():
            sb.write(name, content)
        return sb.run(argv, stdin=stdin)
