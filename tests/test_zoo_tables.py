"""The README's BabyAI table is made from the zoo entries and the bundled checkpoints' stored
evaluations (seqagents/zoo_tables.py): its numbers are the checkpoints' numbers."""

import json
import re
from pathlib import Path

from seqagents.zoo import list_entries, zoo_dir
from seqagents.zoo_tables import _block, babyai_cells, babyai_table, readme_block

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_holds_the_table_the_zoo_makes():
    assert readme_block(README) == _block(), "run `python -m seqagents.zoo_tables --write`"


def test_each_measured_cell_is_its_checkpoints_stored_success_rate():
    cells = babyai_cells()
    levels = {level for level, _, _ in cells}
    assert len(levels) == 7  # the LEAP paper's seven levels
    measured = [c for c in cells.values() if c.success is not None]
    assert len(measured) >= 12
    rows = {line.split(" | ")[0].lstrip("| "): line for line in babyai_table().splitlines()[2:9]}
    columns = [("leap", "default"), ("leap", "privileged"), ("dt", "default"), ("dt", "privileged")]
    for (level, algo, setting), cell in cells.items():
        stored = (
            json.loads(
                (zoo_dir() / list_entries()[cell.entry].checkpoint.path / "config.json").read_text()
            )["evaluation"]
            if cell.success is not None
            else None
        )
        text = rows[level].split(" | ")[1 + columns.index((algo, setting))]
        if stored is None:
            assert text == "—"
            continue
        assert stored["n_episodes"] == 200
        number = float(re.search(r"[\d.]+", text).group())
        assert number == round(100 * stored["success_rate"], 1)
        assert ("**" in text) == (number >= cell.paper)


def test_a_cell_is_bold_only_at_or_above_the_paper(monkeypatch):
    import seqagents.zoo_tables as tables

    entries = {n: e for n, e in list_entries().items() if n == "leap/babyai-pickuploc"}
    for value, bold in [(66.9, False), (67.0, True)]:
        monkeypatch.setattr(tables, "_measured", lambda entry, v=value: (v, 200))
        row = babyai_table(entries).splitlines()[2]
        assert ("**" in row) == bold, row
