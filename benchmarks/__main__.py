"""``python -m benchmarks [--toy] [--only NAME ...] [--out FILE]``: run every benchmark (or the
named ones), print the tables and write them as Markdown (default benchmarks/RESULTS.md)."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from importlib import metadata
from pathlib import Path

from benchmarks import activations, cpp_euler, model, ode, sgd, startup, structured, sweep, tail, vector_field, wide

BENCHMARKS = (ode, startup, vector_field, sgd, sweep, model, tail, wide, activations, structured, cpp_euler)


def machine() -> list[str]:
    cpu = platform.processor() or "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in ("jax", "jaxlib", "diffrax", "numpy"))
    return [f"- machine: {cpu}, {os.cpu_count()} cores, {platform.platform()}",
            f"- versions: Python {platform.python_version()}, {versions}",
            f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"]


def markdown(sections: list[dict], toy: bool) -> str:
    lines = ["# nndyn benchmarks", "", "Written by `python -m benchmarks`"
             + (" --toy (toy sizes: not representative)" if toy else "")
             + ". Times are the median of the repeats [min–max]; speed-ups are ratios to a baseline"
             " timed in the same run.", "", *machine(), ""]
    for section in sections:
        lines += [f"## {section['title']}", "", "| measurement | value |", "| --- | --- |"]
        lines += [f"| {label} | {value} |" for label, value in section["rows"]]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--toy", action="store_true", help="tiny sizes: checks the harness in seconds")
    parser.add_argument("--only", nargs="+", choices=[module.__name__.rsplit(".", 1)[1] for module in BENCHMARKS],
                        help="run only these benchmarks")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "RESULTS.md")
    options = parser.parse_args()
    sections = []
    for benchmark in BENCHMARKS:
        name = benchmark.__name__.rsplit(".", 1)[1]
        if options.only and name not in options.only:
            continue
        print(f"\nrunning benchmarks/{name}.py ...", flush=True)
        began = time.perf_counter()
        section = benchmark.run(options.toy)
        print(f"{section['title']} ({time.perf_counter() - began:.0f} s)")
        for label, value in section["rows"]:
            print(f"  {label:<72} {value}")
        sections.append(section)
    text = markdown(sections, options.toy)
    temporary = options.out.with_name(f".{options.out.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(options.out)
    print(f"\nwrote {options.out}")


if __name__ == "__main__":
    main()
