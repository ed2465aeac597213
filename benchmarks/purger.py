"""Time ``nublado purger report`` against ``find -type f -atime +30`` on one tree.

Builds a 200,000-file tree (2,000 directories: 20 top-level directories of 100
each, 100 files per directory) in a temporary directory, ages every third file
by 60 days, then runs both commands as whole processes (start-up included)
several times, alternating, on the warm tree and prints the best times, their ratio and the
purger's peak RSS (largest of its processes).

    python benchmarks/purger.py [--files-per-dir 100] [--runs 5] [--workers N]
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


def build_tree(root: Path, tops: int, subdirs: int, files: int) -> tuple[int, int]:
    """Create the tree; return (files, files aged past 30 days)."""
    old = time.time() - 60 * DAY
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
                    os.utime(path, (old, old))
                    aged += 1
                total += 1
    return total, aged


def run_measured(command: list[str]) -> tuple[float, float, int, bytes]:
    """Wall time, CPU seconds and peak RSS in KiB (both over the process tree) and stdout."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{command[0]} failed with status {process.returncode}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, out


def main() -> None:
    """Build the tree, run both commands, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tops", type=int, default=20)
    parser.add_argument("--subdirs", type=int, default=100)
    parser.add_argument("--files-per-dir", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()

    nublado = shutil.which("nublado") or str(Path(sys.executable).with_name("nublado"))
    with tempfile.TemporaryDirectory(prefix="purger-bench-") as temp:
        base = Path(temp)
        root = base / "scratch"
        start = time.perf_counter()
        total, aged = build_tree(root, args.tops, args.subdirs, args.files_per_dir)
        print(
            f"tree: {total:,} files in {args.tops * args.subdirs:,} directories, "
            f"{aged:,} aged 60 days; built in {time.perf_counter() - start:.1f} s"
        )
        policy = base / "policy.yaml"
        policy.write_text(
            f"directories:\n  - path: {root}\n    threshold: 1Mi\n    intervals:\n"
            "      large: {access_interval: 30d}\n      small: {access_interval: 30d}\n"
        )
        config = base / "config.yaml"
        config.write_text(f"policyFile: {policy}\nlogProfile: production\n")
        purger = [nublado, "purger", "report", "-c", str(config)]
        if args.workers:
            purger += ["--workers", str(args.workers)]
        find = ["find", str(root), "-type", "f", "-atime", "+30"]

        run_measured(find)  # warm the dentry and inode caches
        find_times, purger_times, rss = [], [], []
        find_cpu, purger_cpu = [], []
        for _ in range(args.runs):
            elapsed, cpu, _, out = run_measured(find)
            find_times.append(elapsed)
            find_cpu.append(cpu)
            find_count = out.count(b"\n")
            elapsed, cpu, peak, out = run_measured(purger)
            purger_times.append(elapsed)
            purger_cpu.append(cpu)
            rss.append(peak)
            purger_count = out.count(b"  -> ")
        best_find, best_purger = min(find_times), min(purger_times)
        print(
            f"find -type f -atime +30: {best_find:.3f} s (best of {args.runs}), "
            f"{min(find_cpu):.2f} s CPU, {find_count:,} files"
        )
        print(
            f"nublado purger report:   {best_purger:.3f} s (best of {args.runs}), "
            f"{min(purger_cpu):.2f} s CPU, {purger_count:,} files"
        )
        print(f"ratio purger / find:     {best_purger / best_find:.2f}x")
        print(f"purger peak RSS:         {max(rss) / 1024:.1f} MiB")
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"machine: {os.cpu_count()} CPUs, load average {load} (others' load skews both)")
        if find_count != purger_count:
            raise SystemExit("the two commands disagree on the number of files")


if __name__ == "__main__":
    main()
