"""Time ``nublado purger report`` against ``find -type f -atime +30`` on three trees.

* ``files``: 200,000 files (2,000 directories: 20 top-level directories of 100
  each, 100 files per directory), every third aged 60 days;
* ``wide``: one directory of 100,000 empty sub-directories;
* ``deep``: a chain 10,000 directories deep with an aged file every 1,000 levels.

Both commands run as whole processes (start-up included) several times,
alternating, on the warm tree; the best times, their ratio and each command's
peak RSS are printed. Peak RSS is measured in a fresh process launched by a
minimal launcher (GNU ``time`` if installed, else a bare ``python -S``): Linux
carries a process's peak RSS across exec, so a command forked straight from
this harness would report the harness's own memory (27 MiB) as its peak. The
launcher's own floor (``true`` run the same way) is printed too.

    python benchmarks/purger.py [--trees files,wide,deep] [--runs 5] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main"]

DAY = 86_400
OLD = time.time() - 60 * DAY

_PY_LAUNCHER = (
    "import os, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execvp(sys.argv[2], sys.argv[2:])\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "open(sys.argv[1], 'w').write(f'{usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}')\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def build_files(root: Path, tops: int = 20, subdirs: int = 100, files: int = 100) -> str:
    total = aged = 0
    for top in range(tops):
        for sub in range(subdirs):
            directory = root / f"user{top:02d}" / f"dir{sub:03d}"
            directory.mkdir(parents=True)
            for index in range(files):
                path = directory / f"file{index:03d}.dat"
                with open(path, "wb") as handle:
                    handle.write(b"x" * (index % 7) * 100)
                if total % 3 == 0:
                    os.utime(path, (OLD, OLD))
                    aged += 1
                total += 1
    return f"{total:,} files in {tops * subdirs:,} directories, {aged:,} aged 60 days"


def build_wide(root: Path, count: int = 100_000) -> str:
    wide = root / "wide"
    wide.mkdir(parents=True)
    fd = os.open(wide, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for index in range(count):
            os.mkdir(f"d{index:06d}", dir_fd=fd)
    finally:
        os.close(fd)
    return f"{count:,} empty sub-directories in one directory"


def build_deep(root: Path, depth: int = 10_000, every: int = 1_000) -> str:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for level in range(1, depth + 1):
        os.mkdir("d", dir_fd=fd)
        child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
        if level % every == 0:
            file = os.open("old", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
            os.utime(file, (OLD, OLD))
            os.close(file)
    os.close(fd)
    return f"a chain {depth:,} directories deep, an aged file every {every:,} levels"


TREES = {"files": build_files, "wide": build_wide, "deep": build_deep}


class Launcher:
    """Runs a command in a fresh process forked from a small launcher; reads its peak RSS."""

    def __init__(self, scratch: Path) -> None:
        self._out = scratch / "launcher.out"
        gnu_time = shutil.which("time")
        if gnu_time and self._is_gnu_time(gnu_time):
            self.name = "GNU time"
            self._prefix = [gnu_time, "-f", "%M %x", "-o", str(self._out)]
        else:
            self.name = "python -S"
            self._prefix = [sys.executable, "-S", "-c", _PY_LAUNCHER, str(self._out)]
        self.floor_kib = self.run(["true"])[2]

    @staticmethod
    def _is_gnu_time(path: str) -> bool:
        probe = subprocess.run(
            [path, "-f", "%M", "true"], capture_output=True, text=True, check=False
        )
        return probe.returncode == 0 and probe.stderr.strip().isdigit()

    def run(self, command: list[str]) -> tuple[float, float, int, bytes]:
        """Wall time, CPU seconds (the command and its workers), peak RSS in KiB, stdout."""
        start = time.perf_counter()
        process = subprocess.Popen(
            self._prefix + command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        assert process.stdout is not None
        out = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise SystemExit(f"{command[0]} failed with status {code}")
        peak = int(self._out.read_text().split()[0])
        return elapsed, usage.ru_utime + usage.ru_stime, peak, out


def measure(launcher: Launcher, name: str, root: Path, runs: int, workers: int | None) -> float:
    policy = root.parent / f"{name}-policy.yaml"
    policy.write_text(
        f"directories:\n  - path: {root}\n    threshold: 1Mi\n    intervals:\n"
        "      large: {access_interval: 30d}\n      small: {access_interval: 30d}\n"
    )
    config = root.parent / f"{name}-config.yaml"
    config.write_text(f"policyFile: {policy}\nlogProfile: production\n")
    nublado = shutil.which("nublado") or str(Path(sys.executable).with_name("nublado"))
    purger = [nublado, "purger", "report", "-c", str(config)]
    if workers:
        purger += ["--workers", str(workers)]
    find = ["find", str(root), "-type", "f", "-atime", "+30"]

    launcher.run(find)  # warm the dentry and inode caches
    figures: dict[str, list[tuple[float, float, int]]] = {"find": [], "purger": []}
    counts = {}
    for _ in range(runs):
        for label, command, marker in (("find", find, b"\n"), ("purger", purger, b"  -> ")):
            elapsed, cpu, peak, out = launcher.run(command)
            figures[label].append((elapsed, cpu, peak))
            counts[label] = out.count(marker)
    best = {label: min(f[0] for f in runs_) for label, runs_ in figures.items()}
    for label, title in (("find", "find -type f -atime +30"), ("purger", "nublado purger report")):
        cpu = min(f[1] for f in figures[label])
        peak = max(f[2] for f in figures[label])
        print(
            f"  {title:24} {best[label]:.3f} s (best of {runs}), {cpu:.2f} s CPU, "
            f"peak RSS {peak / 1024:.1f} MiB, {counts[label]:,} files"
        )
    ratio = best["purger"] / best["find"]
    print(f"  ratio purger / find:     {ratio:.2f}x")
    if counts["find"] != counts["purger"]:
        raise SystemExit("the two commands disagree on the number of files")
    return ratio


def main() -> None:
    """Build each tree, run both commands on it, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trees", default="files,wide,deep")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="purger-bench-"))
    try:
        launcher = Launcher(base)
        print(f"launcher: {launcher.name}, its own peak RSS {launcher.floor_kib / 1024:.1f} MiB")
        for name in args.trees.split(","):
            root = base / name / "scratch"
            root.mkdir(parents=True)
            start = time.perf_counter()
            what = TREES[name](root)
            print(f"{name}: {what}; built in {time.perf_counter() - start:.1f} s")
            measure(launcher, name, root, args.runs, args.workers)
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"machine: {os.cpu_count()} CPUs, load average {load} (others' load skews both)")
    finally:
        # rm -rf, not shutil.rmtree: the deep tree is deeper than Python's recursion limit.
        subprocess.run(["rm", "-rf", "--", str(base)], check=False)


if __name__ == "__main__":
    main()
