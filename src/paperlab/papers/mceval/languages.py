"""The 40 McEval languages as one declarative table (McEval, Chai et al. 2024, Sec. 3).

Each `LanguageSpec` says how a program in that language is put together, compiled and run:

- `file`: the source file name in the sandbox (some toolchains insist on it: Java's `Main`);
- `compile` / `run`: argv templates, `{file}` is the source file and `{exe}` the built program;
  the sandbox's working directory is the program's folder;
- `test`: the test convention. "append": the problem's test code is appended to the solution
  in the same file, and the program passes when every step exits 0 (the test code exits
  non-zero on the first failed check). "compare": markup languages (HTML, JSON, Markdown),
  which McEval scores by comparing with the reference, not by execution (DEVIATION: listed,
  not scored yet; `execute` reports them "not_executable");
- `tools`: executables the language needs on PATH (what `paperlab mceval doctor` looks for),
  and `version`: the argv that prints the toolchain's version;
- `debian` / `npm`: what `paperlab mceval install-toolchains` installs;
- `memory`: the address-space limit, None for runtimes that reserve large virtual memory at
  start (the JVM, Go, V8, .NET), which then rely on the time and process limits;
- `aliases`: the tags a fenced code block may carry for this language (lower case).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field

from paperlab.claims import UserError

GiB = 1 << 30


@dataclass(frozen=True)
class LanguageSpec:
    key: str  # our id, also the name of problems/<key>.toml
    name: str  # McEval's name for it
    file: str
    run: tuple[str, ...]
    tools: tuple[str, ...]
    version: tuple[str, ...]
    compile: tuple[str, ...] | None = None
    comment: str = "#"
    aliases: tuple[str, ...] = ()
    debian: tuple[str, ...] = ()
    npm: tuple[str, ...] = ()
    memory: int | None = GiB
    test: str = "append"
    timeout_scale: float = 1.0  # slow starters (JVM, Kotlin, Scala) get more wall time
    env: dict[str, str] = field(default_factory=dict)  # extra variables for every step

    @property
    def tags(self) -> tuple[str, ...]:
        return (self.key, self.name.lower(), *self.aliases)

    def missing_tools(self) -> list[str]:
        """The tools of `tools` the sandboxed program cannot run: not on PATH, or only in
        directories its unprivileged user cannot reach (e.g. rustup's ~/.cargo/bin of root)."""
        from paperlab.core.sandbox import program_path

        reachable = program_path()
        return [t for t in self.tools if shutil.which(t, path=reachable) is None]

    def why_missing(self) -> str:
        """Why the toolchain cannot be used ("" when it can): absent, or installed where the
        sandbox's user cannot reach it."""
        missing = self.missing_tools()
        if not missing:
            return ""
        found = [p for p in (shutil.which(t) for t in missing) if p]
        if found:
            return (
                f"installed where the sandbox cannot reach it ({', '.join(found)}); "
                "install it system-wide"
            )
        return f"not on PATH: {' '.join(missing)}"

    @property
    def executable(self) -> bool:
        return self.test == "append"


def _spec(key: str, name: str, file: str, run: str, tools: str, version, **kw) -> LanguageSpec:
    return LanguageSpec(
        key,
        name,
        file,
        tuple(run.split()),
        tuple(tools.split()),
        version if isinstance(version, tuple) else tuple(version.split()),
        compile=tuple(kw.pop("compile").split()) if "compile" in kw else None,
        aliases=tuple(kw.pop("aliases", "").split()),
        debian=tuple(kw.pop("debian", "").split()),
        npm=tuple(kw.pop("npm", "").split()),
        **kw,
    )


LANGUAGES: dict[str, LanguageSpec] = {
    s.key: s
    for s in [
        _spec(
            "awk",
            "AWK",
            "main.awk",
            "awk -f {file}",
            "awk",
            "awk -W version",
            aliases="gawk mawk",
            debian="gawk",
        ),
        _spec(
            "c",
            "C",
            "main.c",
            "./main",
            "gcc",
            "gcc --version",
            compile="gcc -O1 -std=c11 -o main {file} -lm",
            comment="//",
            aliases="h",
            debian="gcc",
        ),
        _spec(
            "cpp",
            "C++",
            "main.cpp",
            "./main",
            "g++",
            "g++ --version",
            compile="g++ -O1 -std=c++17 -o main {file}",
            comment="//",
            aliases="c++ cxx cc hpp",
            debian="g++",
        ),
        _spec(
            "csharp",
            "C#",
            "main.cs",
            "mono main.exe",
            "mcs mono",
            "mcs --version",
            compile="mcs -out:main.exe {file}",
            comment="//",
            aliases="c# cs",
            debian="mono-mcs",
            memory=None,
            timeout_scale=2.0,
        ),
        _spec(
            "coffeescript",
            "CoffeeScript",
            "main.coffee",
            "coffee {file}",
            "coffee node",
            "coffee --version",
            aliases="coffee",
            npm="coffeescript",
            memory=None,
        ),
        _spec(
            "common_lisp",
            "Common Lisp",
            "main.lisp",
            "sbcl --script {file}",
            "sbcl",
            "sbcl --version",
            comment=";",
            aliases="lisp commonlisp cl",
            debian="sbcl",
            memory=None,
        ),
        _spec(
            "dart",
            "Dart",
            "main.dart",
            "dart run {file}",
            "dart",
            "dart --version",
            comment="//",
            memory=None,
            timeout_scale=2.0,
        ),
        _spec(
            "elixir",
            "Elixir",
            "main.exs",
            "elixir {file}",
            "elixir",
            "elixir --version",
            aliases="exs ex",
            debian="elixir",
            memory=None,
            timeout_scale=2.0,
        ),
        _spec(
            "emacs_lisp",
            "Emacs Lisp",
            "main.el",
            "emacs --batch -Q -l {file}",
            "emacs",
            "emacs --version",
            comment=";",
            aliases="elisp emacs-lisp emacslisp el",
            debian="emacs-nox",
        ),
        _spec(
            "erlang",
            "Erlang",
            "main.erl",
            "escript {file}",
            "escript erl",
            (
                "erl",
                "-noshell",
                "-eval",
                'io:format("~s~n", [erlang:system_info(otp_release)]), halt().',
            ),
            comment="%",
            aliases="erl",
            debian="erlang-base",
            memory=None,
            timeout_scale=2.0,
        ),
        _spec(
            "fsharp",
            "F#",
            "main.fsx",
            "dotnet fsi {file}",
            "dotnet",
            "dotnet --version",
            comment="//",
            aliases="f# fs fsx",
            memory=None,
            timeout_scale=3.0,
        ),
        _spec(
            "fortran",
            "Fortran",
            "main.f90",
            "./main",
            "gfortran",
            "gfortran --version",
            compile="gfortran -O1 -o main {file}",
            comment="!",
            aliases="f90 f95 f03",
            debian="gfortran",
        ),
        _spec(
            "go",
            "Go",
            "main.go",
            "./main",
            "go",
            "go version",
            compile="go build -o main {file}",
            comment="//",
            aliases="golang",
            debian="golang-go",
            memory=None,
            timeout_scale=3.0,
            env={"GO111MODULE": "off"},
        ),
        _spec(
            "groovy",
            "Groovy",
            "main.groovy",
            "groovy {file}",
            "groovy",
            "groovy --version",
            comment="//",
            debian="groovy",
            memory=None,
            timeout_scale=3.0,
        ),
        _spec(
            "haskell",
            "Haskell",
            "main.hs",
            "./main",
            "ghc",
            "ghc --version",
            compile="ghc -O0 -o main {file}",
            comment="--",
            aliases="hs",
            debian="ghc",
            memory=None,
            timeout_scale=3.0,
        ),
        _spec("html", "HTML", "index.html", "", "", "", comment="", aliases="htm", test="compare"),
        _spec(
            "java",
            "Java",
            "Main.java",
            "java -Xmx256m -Xss8m Main",
            "javac java",
            "javac -version",
            compile="javac -J-Xmx512m {file}",
            comment="//",
            debian="default-jdk-headless",
            memory=None,
            timeout_scale=3.0,
        ),
        _spec(
            "javascript",
            "JavaScript",
            "main.js",
            "node {file}",
            "node",
            "node --version",
            comment="//",
            aliases="js node nodejs",
            debian="nodejs",
            memory=None,
        ),
        _spec("json", "JSON", "data.json", "", "", "", comment="", test="compare"),
        _spec(
            "julia",
            "Julia",
            "main.jl",
            "julia {file}",
            "julia",
            "julia --version",
            aliases="jl",
            memory=None,
            timeout_scale=3.0,
        ),
        _spec(
            "kotlin",
            "Kotlin",
            "main.kt",
            "java -jar main.jar",
            "kotlinc java",
            "kotlinc -version",
            compile="kotlinc {file} -include-runtime -d main.jar",
            comment="//",
            aliases="kt",
            debian="kotlin",
            memory=None,
            timeout_scale=6.0,
        ),
        _spec(
            "lua",
            "Lua",
            "main.lua",
            "lua5.4 {file}",
            "lua5.4",
            "lua5.4 -v",
            comment="--",
            debian="lua5.4",
        ),
        _spec(
            "markdown",
            "Markdown",
            "README.md",
            "",
            "",
            "",
            comment="",
            aliases="md",
            test="compare",
        ),
        _spec(
            "pascal",
            "Pascal",
            "main.pas",
            "./main",
            "fpc",
            "fpc -iV",
            compile="fpc -O1 -omain {file}",
            comment="//",
            aliases="pas delphi",
            debian="fp-compiler",
        ),
        _spec(
            "perl",
            "Perl",
            "main.pl",
            "perl {file}",
            "perl",
            "perl -e print($^V)",
            aliases="pl",
            debian="perl",
        ),
        _spec(
            "php",
            "PHP",
            "main.php",
            "php {file}",
            "php",
            "php --version",
            comment="//",
            debian="php-cli",
        ),
        _spec(
            "powershell",
            "PowerShell",
            "main.ps1",
            "pwsh -NoProfile -File {file}",
            "pwsh",
            "pwsh --version",
            aliases="ps1 pwsh",
            memory=None,
            timeout_scale=3.0,
        ),
        _spec(
            "python",
            "Python",
            "main.py",
            "python3 {file}",
            "python3",
            "python3 --version",
            aliases="py python3",
            debian="python3",
        ),
        _spec(
            "r",
            "R",
            "main.R",
            "Rscript {file}",
            "Rscript",
            "Rscript --version",
            debian="r-base-core",
            memory=None,
            timeout_scale=2.0,
        ),
        _spec(
            "racket",
            "Racket",
            "main.rkt",
            "racket {file}",
            "racket",
            "racket --version",
            comment=";",
            aliases="rkt",
            debian="racket",
            memory=None,
            timeout_scale=2.0,
        ),
        _spec(
            "ruby",
            "Ruby",
            "main.rb",
            "ruby {file}",
            "ruby",
            "ruby --version",
            aliases="rb",
            debian="ruby",
        ),
        _spec(
            "rust",
            "Rust",
            "main.rs",
            "./main",
            "rustc",
            "rustc --version",
            compile="rustc --edition 2021 -O -o main {file}",
            comment="//",
            aliases="rs",
            memory=None,
            timeout_scale=3.0,
        ),
        _spec(
            "scala",
            "Scala",
            "main.scala",
            "scala {file}",
            "scala",
            "scala -version",
            comment="//",
            debian="scala",
            memory=None,
            timeout_scale=6.0,
        ),
        _spec(
            "scheme",
            "Scheme",
            "main.scm",
            "guile --no-auto-compile -s {file}",
            "guile",
            "guile --version",
            comment=";",
            aliases="scm guile",
            debian="guile-3.0",
            memory=None,
        ),
        _spec(
            "shell",
            "Shell",
            "main.sh",
            "bash {file}",
            "bash",
            "bash --version",
            aliases="bash sh zsh",
            debian="bash",
        ),
        _spec(
            "swift",
            "Swift",
            "main.swift",
            "./main",
            "swiftc",
            "swiftc --version",
            compile="swiftc -o main {file}",
            comment="//",
            memory=None,
            timeout_scale=3.0,
        ),
        _spec(
            "tcl",
            "Tcl",
            "main.tcl",
            "tclsh {file}",
            "tclsh",
            ("sh", "-c", "echo 'puts [info patchlevel]' | tclsh"),
            debian="tcl",
        ),
        _spec(
            "typescript",
            "TypeScript",
            "main.ts",
            "node main.js",
            "tsc node",
            "tsc --version",
            compile="tsc --target es2020 --outDir . {file}",
            comment="//",
            aliases="ts",
            npm="typescript",
            memory=None,
            timeout_scale=3.0,
        ),
        _spec(
            "visual_basic",
            "VB",
            "main.vb",
            "mono main.exe",
            "vbnc mono",
            "vbnc /help",
            compile="vbnc -out:main.exe {file}",
            comment="'",
            aliases="vb vbnet vb.net visualbasic",
            debian="mono-vbnc",
            memory=None,
            timeout_scale=2.0,
        ),
        _spec(
            "vimscript",
            "VimScript",
            "main.vim",
            "vim -Es -N -u NONE -i NONE -S {file}",
            "vim",
            "vim --version",
            comment='"',
            aliases="vim viml",
            debian="vim-nox",
        ),
    ]
}


def get_language(name: str) -> LanguageSpec:
    """A language by our key, McEval's name or a fence alias (any case)."""
    wanted = name.strip().lower()
    for spec in LANGUAGES.values():
        if wanted in spec.tags:
            return spec
    known = ", ".join(sorted(LANGUAGES))
    raise UserError(f"unknown language {name!r}; known: {known}")
