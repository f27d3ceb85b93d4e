#!/usr/bin/env python3
"""Summarise benchmark JSON lines as a Markdown table.

    scripts/bench_table.py [--json] [FILE ...]      (reads stdin without files)

Every line that is a JSON object with "bench" and "mode" counts, unless it has "failed" (said on
stderr); anything else is ignored, so raw `cargo bench` output can be piped in. A line's main figure is the key its "figure" names,
or else the first of FIGURES it has. Lines repeat across rounds: each (bench, mode) cell is the
median of its rounds. One row per bench, in first-seen order; one column per mode (recorded,
unrecorded, erlang first, then any others as seen); then ratios of recorded to unrecorded and
to erlang, oriented so that a ratio above 1 means Theater is slower or worse.

--json prints one JSON line per (bench, mode) median instead, which this script reads back.
"""

import argparse
import fileinput
import json
import statistics
import sys

FIGURES = ["round_trip_us", "messages_per_second", "hop_us", "per_child_us", "us_per_spawn",
           "events_per_second", "seconds_per_gib", "bytes_per_actor", "wake_us", "seconds"]
RATES = {"messages_per_second", "events_per_second"}  # higher is better; the rest are times
PREFERRED_MODES = ["recorded", "unrecorded", "erlang", "floor"]
# "floor": the least any implementation could do (verification: one BLAKE3 per event).
RATIOS = [("recorded", "unrecorded"), ("recorded", "erlang"), ("recorded", "floor")]


def figure_of(record):
    """The (key, value) of a record's main figure, or None."""
    keys = [record["figure"]] if "figure" in record else FIGURES
    for key in keys:
        value = record.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return key, float(value)
    return None


def read(paths):
    """{(bench, mode): (unit, [values], rounds)}, in first-seen order."""
    cells = {}
    for line in fileinput.input(paths):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or "bench" not in record or "mode" not in record:
            continue
        # A run that failed (a skynet tree that did not complete) has no figure to count.
        if "failed" in record:
            print(f"{record['bench']} {record['mode']} failed: {record['failed']}", file=sys.stderr)
            continue
        figure = figure_of(record)
        if figure is None:
            continue
        unit, value = figure
        key = (str(record["bench"]), str(record["mode"]))
        cells.setdefault(key, (unit, [], []))[1].append(value)
        # A line --json printed stands for the rounds it is the median of.
        rounds = record.get("rounds")
        cells[key][2].append(rounds if isinstance(rounds, int) and rounds > 0 else 1)
    return {key: (unit, values, sum(rounds)) for key, (unit, values, rounds) in cells.items()}


def fmt(x):
    """Three significant figures; big numbers whole, with thousands separators."""
    if abs(x) >= 1000:
        return f"{float(f'{x:.3g}'):,.0f}"
    return f"{x:.3g}"


def ratio(unit, recorded, other):
    """Above 1 when recorded is worse: slower for a time, lower for a rate."""
    if unit in RATES:
        return other / recorded if recorded else None
    return recorded / other if other else None


def table(cells):
    benches = list(dict.fromkeys(bench for bench, _ in cells))
    seen = list(dict.fromkeys(mode for _, mode in cells))
    modes = [m for m in PREFERRED_MODES if m in seen] + [m for m in seen if m not in PREFERRED_MODES]
    ratios = [(a, b) for a, b in RATIOS
              if any((bench, a) in cells and (bench, b) in cells for bench in benches)]
    header = ["bench", "unit"] + modes + [f"{a} ÷ {b}" for a, b in ratios]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 2 + "---:|" * (len(header) - 2)]
    for bench in benches:
        present = [m for m in modes if (bench, m) in cells]
        unit = cells[(bench, present[0])][0]
        medians = {m: statistics.median(cells[(bench, m)][1]) for m in present}
        row = [bench, unit] + [fmt(medians[m]) if m in medians else "" for m in modes]
        for a, b in ratios:
            r = None
            # A ratio only means something when both figures are in the same unit.
            if a in medians and b in medians and cells[(bench, a)][0] == cells[(bench, b)][0]:
                r = ratio(unit, medians[a], medians[b])
            row.append(f"{r:.3g}×" if r is not None else "")
        lines.append("| " + " | ".join(row) + " |")
    rounds = sorted({n for _, _, n in cells.values()})
    count = str(rounds[0]) if len(rounds) == 1 else f"{rounds[0]}–{rounds[-1]}"
    lines.append("")
    lines.append(f"Medians of {count} round{'s' if rounds[-1] != 1 else ''}; "
                 "ratios above 1 mean Theater is slower.")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print medians as JSON lines")
    parser.add_argument("files", nargs="*", help="JSON-lines files (default: stdin)")
    args = parser.parse_args()
    cells = read(args.files)
    if not cells:
        print("no benchmark lines found", file=sys.stderr)
        return 1
    if args.json:
        for (bench, mode), (unit, values, rounds) in cells.items():
            print(json.dumps({"bench": bench, "mode": mode, "figure": unit,
                              unit: statistics.median(values), "rounds": rounds}))
    else:
        print(table(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
