"""paperlab.core.sandbox: each test runs a hostile (or plain) program and checks the
containment from the outside. Tests that need a protection this machine lacks skip and say
which; as root on Linux (CI) every test runs."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from paperlab.core.sandbox import (
    Limits,
    RunResult,
    Sandbox,
    isolation_report,
    program_path,
    run_program,
)

if not sys.platform.startswith("linux"):
    pytest.skip("the sandbox is Linux-only", allow_module_level=True)

AVAILABLE = {name: (ok, detail) for name, ok, detail in isolation_report()}
PY = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")  # reachable by any uid
if PY is None:
    pytest.skip("needs a system-wide python3 for the sandboxed programs", allow_module_level=True)
FAST = Limits(wall_s=5.0, cpu_s=5.0)


def needs(*features: str) -> None:
    for name in features:
        ok, detail = AVAILABLE[name]
        if not ok:
            pytest.skip(f"isolation feature {name!r} unavailable here: {detail}")


def py(code: str, **kwargs) -> RunResult:
    return run_program([PY, "-c", code], **{"limits": FAST, **kwargs})


def _read(path: str) -> str:
    try:
        return Path(path).read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def strays(needle: str, uid: int | None = None) -> list[str]:
    """Processes whose cmdline or cwd mention ``needle``, or that run as ``uid``, plus our
    own unreaped (zombie) children."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        status = _read(f"/proc/{pid}/status")
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            cwd = ""
        cmdline = _read(f"/proc/{pid}/cmdline")
        real_uid = fields.get("Uid", "").split()[:1]
        zombie_child = fields.get("State", "").startswith("Z") and fields.get(
            "PPid", ""
        ).strip() == str(os.getpid())
        if (
            needle in cmdline
            or needle in cwd
            or (uid is not None and real_uid == [str(uid)])
            or zombie_child
        ):
            found.append(f"{pid}: {cmdline or fields.get('Name', '?')}")
    return found


def assert_no_strays(needle: str, uid: int | None = None) -> None:
    deadline = time.monotonic() + 1.0  # reaping by the kernel is not instantaneous
    while (left := strays(needle, uid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left == []


# -- the basics ----------------------------------------------------------------------------


def test_hello_world_passes() -> None:
    r = py("print('hello, world')")
    assert (r.status, r.returncode, r.stdout, r.passed) == ("ok", 0, "hello, world\n", True)
    assert not r.truncated and r.wall_s < 5
    core = ("pgroup", "rlimits", "netns", "pidns", "ipcns", "mountns", "uid")
    assert {n for n in core if AVAILABLE[n][0]} <= set(r.isolation)


def test_nonzero_exit_is_error_not_pass() -> None:
    r = run_program(["sh", "-c", "echo oops >&2; exit 3"], limits=FAST)
    assert (r.status, r.returncode, r.stderr, r.passed) == ("error", 3, "oops\n", False)


def test_missing_program_is_sandbox_error() -> None:
    r = run_program(["paperlab-no-such-program"], limits=FAST)
    assert r.status == "sandbox_error" and not r.passed and "not found" in r.detail


def test_stdin_passes_through_even_when_large() -> None:
    assert py("print(input()[::-1])", stdin="abc\n").stdout == "cba\n"
    big = "x" * 3_000_000  # far more than a pipe buffer: needs non-blocking writes
    r = py("import sys; print(len(sys.stdin.read()))", stdin=big)
    assert r.passed and r.stdout.strip() == str(len(big))


def test_compile_then_run_in_one_sandbox() -> None:
    gcc = shutil.which("gcc", path="/usr/local/bin:/usr/bin:/bin")
    if gcc is None:
        pytest.skip("gcc not installed")
    source = (
        '#include <stdio.h>\nint main(void){int a,b; scanf("%d %d",&a,&b);'
        ' printf("%d\\n", a*b); return 0;}\n'
    )
    with Sandbox(limits=Limits(wall_s=20, cpu_s=20)) as sb:
        sb.write("src/main.c", source)
        built = sb.run([gcc, "-O1", "-o", "main", "src/main.c"])
        assert built.passed, built.stderr
        r = sb.run(["./main"], stdin="6 7\n")
    assert (r.status, r.stdout) == ("ok", "42\n")


def test_stdout_and_stderr_are_read_concurrently() -> None:
    # 1 MB to stderr first: a reader that drains stdout only would deadlock here.
    code = "import sys; sys.stderr.write('e' * 1_000_000); sys.stdout.write('o' * 1_000_000)"
    r = py(code, limits=Limits(wall_s=5, output_bytes=2_000_000))
    assert r.passed and len(r.stderr) == len(r.stdout) == 1_000_000


# -- limits ---------------------------------------------------------------------------------


def test_infinite_loop_times_out() -> None:
    start = time.monotonic()
    r = py("while True: pass", limits=Limits(wall_s=1.5, cpu_s=30))
    assert r.status == "timeout" and r.returncode is None and not r.passed
    assert 1.4 < r.wall_s < 4 and time.monotonic() - start < 5


def test_timeout_holds_when_sigterm_is_ignored() -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    r = py(code, limits=Limits(wall_s=1.0))
    assert r.status == "timeout" and r.wall_s < 4


def test_cpu_limit() -> None:
    r = py("while True: pass", limits=Limits(wall_s=20, cpu_s=1))
    assert r.status == "signal" and r.returncode == -24 and "SIGXCPU" in r.detail
    assert r.wall_s < 6 and not r.passed


def test_memory_hog_fails() -> None:
    r = py("b = bytearray(4 << 30); print('allocated')")  # RLIMIT_AS is 1 GiB by default
    assert not r.passed and "allocated" not in r.stdout and r.status in ("error", "signal")


def test_memory_cgroup_caps_the_tree_even_without_rlimit_as() -> None:
    needs("memcg")
    limits = Limits(wall_s=10, memory_bytes=None, tree_memory_bytes=200 << 20)
    r = py("b = b'x' * (800 << 20); print('allocated')", limits=limits)  # touches every page
    assert r.status == "signal" and r.returncode == -9 and "memory cgroup" in r.detail
    assert "allocated" not in r.stdout


def test_output_flood_is_cut_quickly() -> None:
    for target in ("", ">&2"):  # 1 GB on stdout, then on stderr
        start = time.monotonic()
        r = run_program(["sh", "-c", f"head -c 1000000000 /dev/zero {target}"], limits=FAST)
        assert r.status == "output_limit" and r.truncated and not r.passed
        assert len(r.stdout) <= FAST.output_bytes and len(r.stderr) <= FAST.output_bytes
        assert time.monotonic() - start < 3


def test_file_size_limit() -> None:
    limits = Limits(wall_s=5, file_bytes=1 << 20)
    with Sandbox(limits=limits) as sb:
        killed = sb.run(["sh", "-c", "exec head -c 4000000 /dev/zero > big"])  # SIGXFSZ
        size = (sb.path / "big").stat().st_size
        # Python ignores SIGXFSZ, so it sees the write fail (EFBIG) instead
        failed = sb.run([PY, "-c", "open('big2', 'wb').write(b'0' * (4 << 20)); print('wrote')"])
    assert killed.status == "signal" and "SIGXFSZ" in killed.detail and size <= 1 << 20
    assert failed.status == "error" and "File too large" in failed.stderr
    assert "wrote" not in failed.stdout


def test_process_limit_bounds_forks() -> None:
    needs("uid")  # without a uid of its own, RLIMIT_NPROC also counts the caller's processes
    code = (
        "import os, time\nn = 0\ntry:\n    while n < 500:\n        if os.fork() == 0:\n"
        "            time.sleep(30); os._exit(0)\n        n += 1\nexcept OSError:\n    pass\n"
        "print(n)"
    )
    with Sandbox(limits=Limits(wall_s=10, processes=20)) as sb:
        r = sb.run([PY, "-c", code])
        uid, root = sb.uid, str(sb.path.parent)
    assert r.passed and 10 <= int(r.stdout) < 20  # the sleeping children died with the run
    assert_no_strays(root, uid)


def test_fork_bomb_is_contained() -> None:
    needs("pidns", "uid")
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    start = time.monotonic()
    with Sandbox(limits=Limits(wall_s=2.0)) as sb:
        r = sb.run([PY, "-c", bomb])
        uid, root = sb.uid, str(sb.path.parent)
    assert r.status == "timeout" and not r.passed and time.monotonic() - start < 8
    assert_no_strays(root, uid)


# -- isolation ------------------------------------------------------------------------------


def test_network_is_blocked_inside_but_works_outside() -> None:
    needs("netns")
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass  # the listener works from the host namespace
        code = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)"
        r = py(code)
        assert r.status == "error" and "Error" in r.stderr, r
        assert py(code, network=True).passed  # control: without the netns it connects


def test_environment_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAPERLAB_FAKE_API_KEY", "sk-secret-1234")
    monkeypatch.setenv("https_proxy", "http://proxy.invalid:3128")
    with Sandbox(limits=FAST, env={"GIVEN": "yes"}) as sb:
        r = sb.run(["env"])
        home = str(sb.path)
    env = dict(line.split("=", 1) for line in r.stdout.splitlines())
    assert "sk-secret-1234" not in r.stdout and "proxy.invalid" not in r.stdout
    assert env["HOME"] == home and env["GIVEN"] == "yes" and env["LC_ALL"] == "C.UTF-8"
    assert set(env) <= {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "GIVEN", "PWD", "SHLVL", "_"}
    assert env["PATH"] == program_path()


@pytest.fixture
def venv_bin_under_tmp(monkeypatch: pytest.MonkeyPatch):
    """A virtualenv-like bin dir under /tmp (searchable by anyone, as a venv's is) with a
    program in it, first on PATH: the sandbox covers /tmp with its own tmpfs."""
    root = Path(tempfile.mkdtemp(prefix="paperlab-venv-", dir="/tmp"))
    bin_dir = root / "bin"
    bin_dir.mkdir()
    prog = bin_dir / f"venvtool-{secrets.token_hex(4)}"
    prog.write_text("#!/bin/sh\necho from-venv\n")
    for path, mode in ((root, 0o755), (bin_dir, 0o755), (prog, 0o755)):
        os.chmod(path, mode)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}")
    try:
        yield bin_dir, prog.name
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("with_tmp_venv", [False, True], ids=["caller-path", "venv-under-tmp"])
def test_program_path_only_lists_directories_the_sandbox_can_reach(
    with_tmp_venv: bool, request: pytest.FixtureRequest
) -> None:
    needs("uid")
    if with_tmp_venv:
        needs("mountns")
        bin_dir, prog = request.getfixturevalue("venv_bin_under_tmp")
        assert shutil.which(prog) == str(bin_dir / prog)  # reachable from here ...
        assert str(bin_dir) not in program_path().split(os.pathsep)  # ... not from inside
        assert shutil.which(prog, path=program_path()) is None
    dirs = program_path().split(os.pathsep)
    assert "/usr/bin" in dirs or "/bin" in dirs
    r = run_program(["sh", "-c", 'for d in "$@"; do cd "$d" || echo "$d"; done', "sh", *dirs])
    assert r.passed and r.stdout == "" and r.stderr == "", r


def test_writes_outside_the_sandbox_do_not_persist() -> None:
    needs("mountns")
    tag = secrets.token_hex(6)
    repo = Path(__file__).resolve().parents[2]
    targets = [
        f"/tmp/paperlab-escape-{tag}",
        f"/var/tmp/paperlab-escape-{tag}",
        f"/dev/shm/paperlab-escape-{tag}",
        str(repo / f"paperlab-escape-{tag}"),
        str(Path.home() / f"paperlab-escape-{tag}"),
    ]
    script = "; ".join(f"echo pwned > {t} 2>/dev/null" for t in targets)
    # /tmp is writable inside (a private tmpfs): the write succeeds there and then vanishes
    script += f"; cat /tmp/paperlab-escape-{tag}"
    try:
        r = run_program(["sh", "-c", script], limits=FAST)
        assert r.stdout == "pwned\n", r
        assert [t for t in targets if os.path.exists(t)] == []
    finally:
        for t in targets:
            if os.path.exists(t):
                os.unlink(t)


def test_runs_as_unprivileged_uid_without_capabilities() -> None:
    needs("uid")
    with Sandbox(limits=FAST) as sb:
        r = sb.run(["sh", "-c", "id -u; grep CapEff /proc/self/status; ls /root"])
        uid = sb.uid
    lines = r.stdout.splitlines()
    assert uid != 0 and lines[0] == str(uid) and lines[1].split()[1] == "0" * 16
    assert r.status == "error"  # /root is unreadable


def test_host_processes_are_invisible() -> None:
    needs("pidns")
    script = f"kill -0 {os.getpid()} 2>/dev/null && echo visible; ls /proc | grep -c '^[0-9]'"
    r = run_program(["sh", "-c", script], limits=FAST)
    assert r.passed and "visible" not in r.stdout
    assert int(r.stdout) < 10  # only the sandbox's own few processes


def test_double_forked_background_process_is_killed() -> None:
    tag = f"{secrets.randbelow(10**6) + 10**6}.5"  # unique sleep duration, findable in /proc
    quiet = f"(setsid sleep {tag} </dev/null >/dev/null 2>&1 &)"
    holding_stdout = f"(setsid sleep {tag} &)"  # keeps our stdout pipe open
    for script in (f"{quiet}; echo started", f"{holding_stdout}; echo started"):
        start = time.monotonic()
        r = run_program(["sh", "-c", script], limits=FAST)
        assert r.passed and r.stdout == "started\n" and time.monotonic() - start < 3
        assert_no_strays(f"sleep {tag}")
    r = run_program(["sh", "-c", f"{quiet}; while :; do :; done"], limits=Limits(wall_s=1))
    assert r.status == "timeout"
    assert_no_strays(f"sleep {tag}")


# -- the directory --------------------------------------------------------------------------


def test_temp_dir_removed_even_when_made_read_only() -> None:
    with Sandbox(limits=FAST) as sb:
        root = sb.path.parent
        sb.write("given.txt", "data")
        r = sb.run(
            [
                "sh",
                "-c",
                "mkdir -p a/b && touch a/b/f && chmod 000 a/b && chmod 500 a "
                "&& chmod 400 given.txt && cat given.txt",
            ]
        )
        assert r.passed and r.stdout == "data"
        assert root.exists()
    assert not root.exists()
    with pytest.raises(RuntimeError):
        _ = sb.path
    assert_no_strays(str(root))


def test_write_rejects_path_traversal() -> None:
    with Sandbox(limits=FAST) as sb:
        for bad in ("../x", "/etc/passwd", "a/../../x", "", ".", "a/..", "x\0y"):
            with pytest.raises(ValueError):
                sb.write(bad, "x")
        assert sb.write("a/b/c.txt", "ok").read_text() == "ok"
        assert sb.write("./d.txt", b"\x00\x01").read_bytes() == b"\x00\x01"


def test_write_never_follows_links_planted_by_the_program(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("original")
    with Sandbox(limits=FAST) as sb:
        sb.run(["sh", "-c", f"ln -s {victim} planted; ln -s {tmp_path} linkdir"])
        sb.write("planted", "overwritten")  # replaces the link, not its target
        assert not (sb.path / "planted").is_symlink()
        with pytest.raises(OSError):
            sb.write("linkdir/new", "x")
    assert victim.read_text() == "original" and not (tmp_path / "new").exists()


def test_concurrent_sandboxes() -> None:
    results: list[RunResult] = []
    uids: list[int] = []

    def one() -> None:
        with Sandbox(limits=FAST) as sb:
            uids.append(sb.uid)
            results.append(sb.run([PY, "-c", "import time; time.sleep(0.3); print('done')"]))

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.stdout for r in results] == ["done\n"] * 3
    if AVAILABLE["uid"][0]:
        assert len(set(uids)) == 3


def test_isolation_report_shape_and_honesty() -> None:
    rows = isolation_report()
    assert all(isinstance(n, str) and isinstance(ok, bool) and d for n, ok, d in rows)
    names = [n for n, _, _ in rows]
    assert {"pgroup", "rlimits", "netns", "pidns", "mountns", "uid", "memcg"} <= set(names)
    r = run_program(["true"], limits=FAST)
    for name, ok, _ in rows:  # a run never claims a protection the report says is missing
        if not ok:
            assert name not in r.isolation
    if os.geteuid() == 0:  # as root (CI) every core protection must be there
        core = {"pgroup", "rlimits", "env", "netns", "pidns", "ipcns", "mountns", "uid"}
        assert all(ok for n, ok, _ in rows if n in core), rows


# -- host sockets bound to a path ------------------------------------------------------------


def test_no_unix_socket_can_be_created_but_socketpair_works() -> None:
    needs("nounix")
    code = (
        "import socket\n"
        "a, b = socket.socketpair(); a.sendall(b'x'); assert b.recv(1) == b'x'\n"
        "try:\n"
        "    socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        "except PermissionError:\n"
        "    print('refused')\n"
    )
    assert py(code).stdout == "refused\n"
    assert py(code, network=True).stdout == ""  # control: network=True lifts the filter


def test_world_writable_host_socket_is_unreachable(tmp_path: Path) -> None:
    needs("nounix", "mountns")
    # a world-writable socket the sandbox uid can reach: outside every tmpfs-covered dir
    base = Path(tempfile.mkdtemp(prefix="paperlab-sock-", dir=Path(__file__).parent))
    try:
        os.chmod(base, 0o755)
        path = base / "s.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            server.bind(str(path))
            os.chmod(path, 0o777)
            server.listen(1)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                c.connect(str(path))  # control: reachable from the host
            code = (
                "import socket, sys\n"
                "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
                f"s.connect({str(path)!r}); s.sendall(b'secret'); print('connected')\n"
            )
            r = py(code)
            assert r.status == "error" and "connected" not in r.stdout, r
            assert "PermissionError" in r.stderr, r.stderr
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_run_is_hidden_behind_a_private_tmpfs() -> None:
    needs("mountns")
    if not os.path.isdir("/run") or os.path.islink("/run") or not os.listdir("/run"):
        pytest.skip("no non-empty /run directory here")
    r = py("import os; print(len(os.listdir('/run')))")
    assert r.passed and r.stdout == "0\n", r


def test_directories_left_by_a_killed_run_are_swept() -> None:
    import subprocess

    from paperlab.core.sandbox import remove_stale_workspaces

    code = (
        "import os, signal\n"
        "from paperlab.core.sandbox import Sandbox\n"
        "sb = Sandbox().__enter__(); sb.write('x.txt', 'x'); print(sb.path.parent, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    left = Path(out.stdout.strip())
    assert out.returncode == -9 and left.is_dir(), out
    assert left in remove_stale_workspaces()
    assert not left.exists()
    with Sandbox() as sb:  # a live process's directory is never swept
        assert sb.path.parent not in remove_stale_workspaces() and sb.path.exists()
