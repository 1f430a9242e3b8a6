"""Results tables derived from the zoo: the BabyAI table of the README.

A measured number lives once, in the bundled checkpoint that was measured (its ``config.json``
``evaluation`` record, written by the command in ``zoo/benchmark.md``); a paper's number lives
once, in its zoo entry (``paper``). The README's table is made from those two by
:func:`babyai_table` and rewritten in place by ``python -m seqagents.zoo_tables --write``
(a test checks that the README holds what this module makes).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from seqagents.zoo import ZooEntry, list_entries, zoo_dir

BENCHMARK_LINK = "zoo/benchmark.md#babyai--leap-and-dt-the-leap-papers-table"
"""Where each measured cell links to: the section that lists the commands behind each row."""

BEGIN = "<!-- babyai-table: made by `python -m seqagents.zoo_tables --write`; do not edit -->"
END = "<!-- /babyai-table -->"


@dataclass(frozen=True)
class Cell:
    """One measured cell: a zoo entry's success rate (%) over its evaluation episodes."""

    entry: str
    success: float | None  # None: not trained yet
    episodes: int | None
    paper: float | None

    @property
    def reaches_paper(self) -> bool:
        return self.success is not None and self.paper is not None and self.success >= self.paper


def _level(entry: ZooEntry) -> str:
    name = entry.env_id.removeprefix("BabyAI-").removesuffix("-v0")
    if entry.env_kwargs.get("doors_open"):
        return f"{name} (doors open)"
    if name.startswith("GoToObjMaze") and name.endswith("R2"):
        return f"{name} (doors closed)"
    return name


def _measured(entry: ZooEntry) -> tuple[float | None, int | None]:
    """The success rate (%) and episode count stored in the entry's bundled checkpoint."""
    if not entry.checkpoint.path:
        return None, None
    config = zoo_dir() / entry.checkpoint.path / "config.json"
    if not config.exists():
        return None, None
    evaluation = json.loads(config.read_text()).get("evaluation") or {}
    rate = evaluation.get("success_rate")
    if rate is None:
        return None, None
    return 100.0 * float(rate), evaluation.get("n_episodes")


def _babyai_entries(entries: dict[str, ZooEntry] | None) -> dict[str, ZooEntry]:
    """The zoo's BabyAI entries under their ``algo/`` names (the short names are aliases)."""
    entries = entries if entries is not None else list_entries()
    return {n: e for n, e in entries.items() if "/" in n and e.env_id.startswith("BabyAI-")}


def babyai_cells(entries: dict[str, ZooEntry] | None = None) -> dict[tuple[str, str, str], Cell]:
    """Every BabyAI cell of the zoo, keyed by ``(level, algo, setting)``.

    ``setting`` is ``"default"`` (the env's partial view and the mission) or ``"privileged"``
    (LEAP's setting, ``env_kwargs: {privileged: true}``). The zoo's short names (no ``algo/``
    prefix) are skipped: each cell is its ``algo/`` entry.
    """
    cells = {}
    for name, entry in _babyai_entries(entries).items():
        setting = "privileged" if entry.env_kwargs.get("privileged") else "default"
        success, episodes = _measured(entry)
        key = (_level(entry), entry.algo, setting)
        cells[key] = Cell(name, success, episodes, entry.paper.score)
    return cells


def _paper_bc(entries: dict[str, ZooEntry]) -> dict[str, float]:
    return {
        _level(e): e.paper.bc for e in _babyai_entries(entries).values() if e.paper.bc is not None
    }


def babyai_table(entries: dict[str, ZooEntry] | None = None) -> str:
    """The README's BabyAI table (markdown): seven levels x {LEAP, DT} x {default, privileged}.

    A bold cell is at or above the paper's number for the same algorithm; ``—`` is not trained yet.

    Example:
        >>> from seqagents.zoo_tables import babyai_table
        >>> print(babyai_table().splitlines()[0])  # doctest: +ELLIPSIS
        | level | LEAP default | LEAP privileged | DT default | DT privileged | paper LEAP | ...
    """
    entries = entries if entries is not None else list_entries()
    cells = babyai_cells(entries)
    bc = _paper_bc(entries)
    # the LEAP entries' order (zoo/leap.yml follows the paper's table)
    levels = list(
        dict.fromkeys(level for level, _, _ in sorted(cells, key=lambda k: k[1] != "leap"))
    )
    columns = [(a, s) for a in ("leap", "dt") for s in ("default", "privileged")]
    names = {"leap": "LEAP", "dt": "DT"}
    lines = [
        "| level | "
        + " | ".join(f"{names[a]} {s}" for a, s in columns)
        + " | paper LEAP | paper DT | paper BC |",
        "|---" * (len(columns) + 4) + "|",
    ]
    for level in levels:
        row = [level]
        for algo, setting in columns:
            cell = cells.get((level, algo, setting))
            if cell is None or cell.success is None:
                row.append("—")
                continue
            text = f"{cell.success:.1f}"
            text = f"**{text}**" if cell.reaches_paper else text
            row.append(f"[{text}][babyai-commands]")
        for algo in ("leap", "dt"):
            cell = cells.get((level, algo, "default"))
            row.append("—" if cell is None or cell.paper is None else f"{cell.paper:.1f}")
        row.append(f"{bc[level]:.1f}" if level in bc else "—")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", f"[babyai-commands]: {BENCHMARK_LINK}"]
    return "\n".join(lines)


def babyai_summary(entries: dict[str, ZooEntry] | None = None) -> str:
    """One line per algorithm and setting: how many levels reach the paper's number."""
    cells = babyai_cells(entries)
    lines = []
    for algo in ("leap", "dt"):
        for setting in ("default", "privileged"):
            mine = [c for (_, a, s), c in cells.items() if a == algo and s == setting]
            done = [c for c in mine if c.success is not None]
            ok = sum(c.reaches_paper for c in done)
            lines.append(
                f"- {algo.upper()} {setting}: {ok} of {len(mine)} levels at or above the paper "
                f"({len(done)} measured)"
            )
    return "\n".join(lines)


def _block(entries: dict[str, ZooEntry] | None = None) -> str:
    return f"{BEGIN}\n{babyai_table(entries)}\n\n{babyai_summary(entries)}\n{END}"


def rewrite(readme: Path) -> bool:
    """Replace the table between the markers in ``readme``; True if the file changed."""
    text = readme.read_text()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{readme}: no BabyAI table markers ({BEGIN!r} ... {END!r})")
    new = pattern.sub(lambda _: _block(), text)
    if new != text:
        readme.write_text(new)
    return new != text


def readme_block(readme: Path) -> str | None:
    """The table block the README holds now (None: no markers)."""
    match = re.search(re.escape(BEGIN) + r".*?" + re.escape(END), readme.read_text(), re.S)
    return match.group(0) if match else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seqagents.zoo_tables", description=__doc__)
    parser.add_argument(
        "--write",
        type=Path,
        nargs="?",
        const=Path("README.md"),
        default=None,
        help="rewrite the table in this README (default README.md)",
    )
    args = parser.parse_args(argv)
    if args.write is None:
        print(_block())
        return 0
    changed = rewrite(args.write)
    print(f"{args.write}: {'updated' if changed else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
