"""The sandbox directory: creation, safe writes into it, and removal.

Layout: ``root/`` (mode 0711, owned by the caller) holding ``work/`` (the program's cwd and
HOME) and ``tmp/`` (its TMPDIR), both owned by the sandbox uid when one is used. The
program owns ``work/`` and may have planted symlinks, hard links, FIFOs or read-only
directories there: writes never follow a link, and removal copes with any permissions.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import tempfile
from pathlib import Path, PurePosixPath

# Per-sandbox uids/gids come from this range: no real account uses it, and a fresh uid per
# sandbox means RLIMIT_NPROC counts only that sandbox's processes (it is per real uid).
UID_BASE, UID_COUNT = 2_000_000_000, 1 << 26


def allocate_uid() -> int:
    return UID_BASE + secrets.randbelow(UID_COUNT)


def traversable_by_others(path: str) -> bool:
    """Whether any user can reach ``path`` (search permission on it and every parent)."""
    try:
        p = Path(path).resolve()
        return all(os.stat(d).st_mode & stat.S_IXOTH for d in (p, *p.parents))
    except OSError:
        return False


def covered_by_tmpfs(path: str, tmpfs_dirs: tuple[str, ...]) -> bool:
    """Whether ``path`` lies under one of ``tmpfs_dirs`` that the sandbox's mount namespace
    covers with a private tmpfs (a real directory, not a link: what the helper mounts over),
    so nothing of the host's is reachable there from inside (e.g. a virtualenv under /tmp)."""
    try:
        p = Path(path).resolve()
    except OSError:
        return False
    for d in tmpfs_dirs:
        if os.path.isdir(d) and not os.path.islink(d):
            top = Path(d).resolve()
            if p == top or top in p.parents:
                return True
    return False


PREFIX = "paperlab-sbx-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale() -> list[Path]:
    """Remove sandbox directories left by a process that died without cleaning up (a kill -9
    of ``mceval run``): ``paperlab-sbx-<pid>-*`` of our own uid whose ``pid`` is gone. A dir
    whose pid was reused by another process stays (harmless: the next sweep gets it)."""
    removed = []
    for base in dict.fromkeys((tempfile.gettempdir(), "/tmp")):
        try:
            entries = list(Path(base).glob(PREFIX + "*-*"))
        except OSError:
            continue
        for d in entries:
            pid = d.name[len(PREFIX) :].split("-", 1)[0]
            try:
                mine = d.is_dir() and not d.is_symlink() and d.stat().st_uid == os.getuid()
            except OSError:
                continue
            if mine and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                ws = Workspace.__new__(Workspace)
                ws.root = d
                try:
                    ws.remove()
                    removed.append(d)
                except OSError:
                    pass
    return removed


class Workspace:
    def __init__(self, owner: int | None) -> None:
        """``owner``: uid (= gid) that gets ``work/`` and ``tmp/``; None = the caller."""
        self.owner = owner
        base = tempfile.gettempdir()
        if owner is not None and not traversable_by_others(base):
            base = "/tmp"  # the sandbox uid must be able to reach its directory
        self.root = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=base)).resolve()
        self.work, self.tmp = self.root / "work", self.root / "tmp"
        try:
            os.chmod(self.root, 0o711)
            for d in (self.work, self.tmp):
                d.mkdir(mode=0o700)
                if owner is not None:
                    os.chown(d, owner, owner)
        except BaseException:
            self.remove()
            raise

    def write(self, name: str, content: str | bytes, executable: bool = False) -> Path:
        """Write ``work/name``; ``name`` is relative, without '..'. Never follows links."""
        parts = PurePosixPath(name).parts
        if not name or "\0" in name or name.startswith("/") or ".." in parts or not parts:
            raise ValueError(f"sandbox file name must be relative, without '..': {name!r}")
        data = content.encode() if isinstance(content, str) else bytes(content)
        dir_flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        dfd = os.open(self.work, dir_flags)
        try:
            for part in parts[:-1]:
                try:
                    os.mkdir(part, 0o755, dir_fd=dfd)
                    if self.owner is not None:
                        os.chown(part, self.owner, self.owner, dir_fd=dfd, follow_symlinks=False)
                except FileExistsError:
                    pass
                sub = os.open(part, dir_flags, dir_fd=dfd)  # ELOOP/ENOTDIR on a planted link
                os.close(dfd)
                dfd = sub
            try:  # replace, never write through: the old entry may be a link or a FIFO
                os.unlink(parts[-1], dir_fd=dfd)
            except FileNotFoundError:
                pass
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(parts[-1], flags, 0o755 if executable else 0o644, dir_fd=dfd)
            with os.fdopen(fd, "wb") as f:
                if self.owner is not None:
                    os.fchown(f.fileno(), self.owner, self.owner)
                f.write(data)
        finally:
            os.close(dfd)
        return self.work.joinpath(*parts)

    def remove(self) -> None:
        """Delete the whole tree, whatever the program did to its permissions."""
        if not self.root.exists():
            return
        try:
            shutil.rmtree(self.root)  # fd-based: never follows symlinks out of the tree
        except OSError:
            _make_deletable(self.root)
            shutil.rmtree(self.root)


def _make_deletable(root: Path) -> None:
    """Give the owner rwx on every directory (for a caller without CAP_DAC_OVERRIDE)."""
    os.chmod(root, 0o700)
    for dirpath, dirnames, _ in os.walk(root):  # top-down: children are fixed before entry
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p):
                os.chmod(p, 0o700)
