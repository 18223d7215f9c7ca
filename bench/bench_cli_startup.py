"""Start-up time of the command line: the wall time of ``mbexplorer --help`` and ``mbexplorer summary --help``
(a new process each run, as a user's shell starts it), and of ``python -c pass``, the floor no command can go
under. Prints the median of several runs and the ratio to the 0.3 s target.

    python bench/bench_cli_startup.py [RUNS]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 0.3


def wall(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 11
    # the console script beside this interpreter (what `pip install` puts on PATH); else the module
    script = Path(sys.executable).with_name("mbexplorer")
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "mbexplorer.cli"]
    print(f"{' '.join(cli)}: median of {runs} runs; target {TARGET_S} s")
    for label, cmd in (("mbexplorer --help", cli + ["--help"]),
                       ("mbexplorer summary --help", cli + ["summary", "--help"]),
                       ("python -c pass (floor)", [sys.executable, "-c", "pass"])):
        t = wall(cmd, runs)
        print(f"  {label:<28} {t * 1e3:7.1f} ms   {t / TARGET_S:5.2f} x target")


if __name__ == "__main__":
    main()
