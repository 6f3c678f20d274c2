#!/usr/bin/env python3
"""Where MariaDB's time goes, per statement shape, from a slow log taken at long_query_time = 0.

    SET GLOBAL long_query_time = 0; SET GLOBAL slow_query_log = 1;   -- then start a fresh mall
    python3 scripts/slowlog-digest.py /var/lib/mysql/<host>-slow.log --since 1764770000 --until 1764770005

Each statement's literals are folded (strings, hex strings, numbers; an IN list becomes
`IN (…)`), and statements of one shape are summed: how many ran, their total and mean server
time, and their share of all the server time in the window. `--since`/`--until` take Unix
seconds (the log's `SET timestamp=` of each statement). Only the standard library is used.
"""

import argparse
import re
import sys
from collections import defaultdict

STRING = re.compile(r"'(?:[^'\\]|\\.)*'")
HEX = re.compile(r"\bx'[0-9a-fA-F]*'|\b0x[0-9a-fA-F]+\b")
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")
IN_LIST = re.compile(r"\bIN\s*\((?:\s*\?\s*,?)+\)", re.IGNORECASE)
VALUES = re.compile(r"\bVALUES\s*(?:\(\s*[?,\s]*\)\s*,?\s*)+", re.IGNORECASE)
SPACE = re.compile(r"\s+")


def shape(statement: str, width: int) -> str:
    """The statement's shape, cut to `width` characters (a batch's compound write statement,
    `BEGIN NOT ATOMIC …`, differs by its parts; cut short, its batches count as one shape)."""
    text = HEX.sub("?", statement)
    text = STRING.sub("?", text)
    text = NUMBER.sub("?", text)
    text = IN_LIST.sub("IN (…)", text)
    text = VALUES.sub("VALUES (…) ", text)
    text = SPACE.sub(" ", text).strip().rstrip(";")
    return text if len(text) <= width else text[: width - 1] + "…"


def entries(lines):
    """Yields (timestamp, query_time, statement) for each logged statement."""
    query_time, stamp, text = None, None, []

    def done():
        if query_time is not None and text:
            yield stamp, query_time, " ".join(text)

    for line in lines:
        if line.startswith("# Query_time:"):
            yield from done()
            query_time = float(line.split()[2])
            stamp, text = None, []
        elif line.startswith("#") or line.startswith("/usr/sbin") or line.startswith("Tcp port"):
            continue
        elif line.startswith("SET timestamp=") and stamp is None:
            stamp = int(line.split("=", 1)[1].rstrip(";\n"))
        elif line.startswith("use ") and not text:
            continue
        elif query_time is not None:
            text.append(line.strip())
    yield from done()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log")
    parser.add_argument("--since", type=int, default=0, help="Unix seconds, inclusive")
    parser.add_argument("--until", type=int, default=2**62, help="Unix seconds, inclusive")
    parser.add_argument("--top", type=int, default=15, help="shapes to print")
    parser.add_argument("--width", type=int, default=100, help="characters of a shape")
    args = parser.parse_args()

    totals = defaultdict(lambda: [0, 0.0])
    with open(args.log, encoding="utf-8", errors="replace") as log:
        for stamp, seconds, statement in entries(log):
            if stamp is None or not args.since <= stamp <= args.until:
                continue
            total = totals[shape(statement, args.width)]
            total[0] += 1
            total[1] += seconds
    if not totals:
        print("no statements in the window", file=sys.stderr)
        return 1
    all_seconds = sum(seconds for _, seconds in totals.values())
    all_count = sum(count for count, _ in totals.values())
    print(f"{all_count} statements, {all_seconds:.3f} s of server time")
    print("| statement | count | total s | share | mean µs |")
    print("|---|---:|---:|---:|---:|")
    ranked = sorted(totals.items(), key=lambda item: -item[1][1])
    for text, (count, seconds) in ranked[: args.top]:
        text = text.replace("|", "\\|")
        share = 100 * seconds / all_seconds if all_seconds else 0
        print(f"| `{text}` | {count} | {seconds:.3f} | {share:.1f} % | {1e6 * seconds / count:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
