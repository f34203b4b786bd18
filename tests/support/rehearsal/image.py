"""What ``images/Dockerfile`` puts under its ``WORKDIR``, as a folder on this machine.

The rehearsal's pods run the image's files, not this checkout: a container whose command
reads a file the image does not hold fails here as it would on the cluster. The folder is
built from the Dockerfile itself: each ``COPY <src>... <dest>`` of the build context (the
repository filtered by ``.dockerignore``) into the working directory, then each
``rm -rf <WORKDIR>/...`` a ``RUN`` line makes. Any other ``RUN`` that could change the
working directory is refused, so the copy cannot silently drift from the image.

``.dockerignore`` is matched as Docker's BuildKit matches it (moby/patternmatcher,
``MatchesOrParentMatches``): patterns are ``filepath.Match`` globs (``*`` and ``?`` stop at
``/``, ``**`` crosses it) on the path relative to the context root, a pattern also matches
everything under a directory it matches, ``!`` re-includes, and the last matching pattern
decides.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

#: RUN commands the copy knows do not touch the working directory (beyond ``rm -rf``).
SAFE_RUN = ("groupadd", "useradd", "pip install")


def _regex(glob: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return re.compile("".join(out) + "$")


def ignore_patterns(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    """(exclude?, compiled glob) per pattern line of a ``.dockerignore``."""
    found = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclude = not line.startswith("!")
        glob = line.lstrip("!").strip().strip("/")
        found.append((exclude, _regex(glob)))
    return found


def ignored(path: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether ``path`` (relative, ``/``-separated) is left out of the build context."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for exclude, pattern in patterns:
        if any(pattern.match(p) for p in prefixes):
            result = exclude
    return result


def _workdir_and_steps(dockerfile: str) -> tuple[str, list[tuple[str, list[str]]]]:
    text = re.sub(r"\\\n", " ", dockerfile)
    workdir, steps = "/", []
    for line in text.splitlines():
        words = line.strip().split(None, 1)
        if not words or words[0].startswith("#"):
            continue
        op, rest = words[0].upper(), (words[1] if len(words) > 1 else "")
        if op == "WORKDIR":
            workdir = rest.strip()
        elif op in ("COPY", "RUN"):
            steps.append((op, shlex.split(rest) if op == "COPY" else [rest]))
    return workdir, steps


def build_image_root(repo: Path, dest: Path) -> Path:
    """The image's working directory, built into ``dest`` (which must not exist)."""
    patterns = ignore_patterns((repo / ".dockerignore").read_text(encoding="utf-8"))
    workdir, steps = _workdir_and_steps((repo / "images" / "Dockerfile").read_text("utf-8"))
    dest.mkdir(parents=True)
    for op, args in steps:
        if op == "COPY":
            *sources, target = args
            for source in sources:
                _copy(repo, source, dest / target, patterns)
        else:
            _run(args[0], workdir, dest)
    return dest


def _copy(
    repo: Path, source: str, target: Path, patterns: list[tuple[bool, re.Pattern[str]]]
) -> None:
    src = repo / source
    if src.is_file():
        if not ignored(source, patterns):
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target / src.name)
        return
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(repo).as_posix()
        if path.is_file() and not ignored(rel, patterns):
            out = target / path.relative_to(src)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, out)


def _run(command: str, workdir: str, dest: Path) -> None:
    for part in (p.strip() for p in re.split(r"&&|;", command)):
        words = shlex.split(part)
        if words[:2] == ["rm", "-rf"]:
            for path in words[2:]:
                if not path.startswith(workdir.rstrip("/") + "/"):
                    raise ValueError(f"RUN removes {path}, outside {workdir}: not emulated")
                shutil.rmtree(dest / path[len(workdir.rstrip("/")) + 1 :], ignore_errors=True)
        elif not any(part.startswith(safe) for safe in SAFE_RUN):
            raise ValueError(f"RUN {part!r} may change {workdir}: the copy cannot follow it")
