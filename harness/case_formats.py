"""Builtin case-file readers: YAML, dotted-key CSV and the Ascend ModelZoo 13-column CSV."""

from __future__ import annotations

import csv
import io
import re
import shlex
from typing import Any

from harness.case import MAX_CASES, deep_merge
from harness.errors import BenchError
from harness.markers import hookimpl
from harness.userfiles import parse_yaml

MODELZOO_COLUMNS = [
    "CASENUM", "CASENAME", "ENV_SET", "JOB_ID", "PROFILING_MODE", "PROFILING_OPTIONS",
    "FP_POINT", "BP_POINT", "AICPU_PROFILING_MODE", "SERVER_ID", "DEVICE_ID",
    "RUN_ALGORITHM_CMD", "CHECKPOINT_DIR",
]

# --flags of the ModelZoo training scripts that have a case key (res50.py, run_pretraining.py).
MODELZOO_FLAGS = {
    "max_train_steps": "train.steps",
    "num_train_steps": "train.steps",
    "num_epochs": "train.epochs",
    "iterations_per_loop": "npu.iterations_per_loop",
    "batch_size": "batch_size",
    "train_batch_size": "batch_size",
    "learning_rate_maximum": "params.learning_rate",
    "learning_rate": "params.learning_rate",
    "num_warmup_steps": "params.warmup_steps",
    "max_seq_length": "params.max_seq_length",
    "display_every": "train.log_every",
}


def _yaml_value(text: str, where: str) -> Any:
    """A cell read as YAML (``[1, 2]``, ``0.1``); a cell that is no YAML stays text."""
    try:
        return parse_yaml(text, where)
    except BenchError:
        return text


def _set_dotted(target: dict, dotted: str, value: Any) -> None:
    node = target
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


class YamlCases:
    """One case (a mapping) or several (``defaults:`` merged under each of ``cases:``)."""

    def claims(self, path: str, text: str) -> bool:
        return path.endswith((".yaml", ".yml"))

    def read(self, path: str, text: str) -> list[tuple[str, Any]]:
        doc = parse_yaml(text, path)
        if doc is None:
            raise BenchError(f"{path}: empty case file")
        if not isinstance(doc, dict):
            raise BenchError(f"{path}: expected a mapping at the top, got {type(doc).__name__}")
        if "cases" not in doc:
            if "defaults" in doc:
                raise BenchError(f"{path}: defaults: only allowed beside a cases: list")
            return [("", doc)]
        extra = sorted(set(doc) - {"cases", "defaults"})
        if extra:
            raise BenchError(f"{path}: {extra[0]}: unknown key beside cases:; "
                             f"put it under defaults:")
        defaults = doc.get("defaults") or {}
        if not isinstance(defaults, dict):
            raise BenchError(f"{path}: defaults: expected a mapping")
        items = doc["cases"]
        if not isinstance(items, list) or not items:
            raise BenchError(f"{path}: cases: expected a non-empty list of mappings")
        out = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise BenchError(f"{path}: cases[{i}]: expected a mapping, "
                                 f"got {type(item).__name__}")
            out.append((f"cases[{i}]", deep_merge(defaults, item)))
        return out


def _csv_rows(path: str, text: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    reader = csv.reader(io.StringIO(text))
    try:
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as exc:
        raise BenchError(f"{path}: line {reader.line_num}: CSV error: {exc}") from None
    rows = [(n, row) for n, row in rows if row and any(c.strip() for c in row)]
    if not rows:
        raise BenchError(f"{path}: empty case file")
    if len(rows) - 1 > MAX_CASES:  # before any cell is read as YAML
        raise BenchError(f"{path}: {len(rows) - 1} cases; a case file may hold at most "
                         f"{MAX_CASES}")
    header = [c.strip() for c in rows[0][1]]
    return header, rows[1:]


class CsvCases:
    """One case per row; the header holds dotted keys (``train.steps``), cells are YAML."""

    key_pattern = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

    def claims(self, path: str, text: str) -> bool:
        return path.endswith(".csv")

    def read(self, path: str, text: str) -> list[tuple[str, Any]]:
        header, rows = _csv_rows(path, text)
        for column, key in enumerate(header, start=1):
            if not self.key_pattern.match(key):
                raise BenchError(f"{path}: header: column {column} {key!r} is not a dotted key")
        if len(set(header)) != len(header):
            raise BenchError(f"{path}: header: repeated column names")
        if not rows:
            raise BenchError(f"{path}: no case rows below the header")
        out = []
        for line, row in rows:
            if len(row) != len(header):
                raise BenchError(f"{path}: row {line}: {len(row)} cells, header has "
                                 f"{len(header)}")
            data: dict = {}
            for key, cell in zip(header, row):
                if cell.strip():
                    _set_dotted(data, key, _yaml_value(cell.strip(), f"{path}: row {line}"))
            out.append((f"row {line}", data))
        return out


class ModelZooCases:
    """The Ascend ModelZoo ``case_*.csv`` (13 columns), mapped onto npu cases.

    DEVICE_ID (space separated) gives the device count and ids, CASENAME the name (its first
    ``_`` part the model), known ``--flags`` of RUN_ALGORITHM_CMD the case keys; rows whose
    first cell starts with ``#`` are skipped, as the ModelZoo scripts do.
    """

    def claims(self, path: str, text: str) -> bool:
        first = text.lstrip("\ufeff").split("\n", 1)[0]
        return path.endswith(".csv") and first.split(",")[0].strip() == "CASENUM"

    def read(self, path: str, text: str) -> list[tuple[str, Any]]:
        header, rows = _csv_rows(path, text.lstrip("\ufeff"))
        if header != MODELZOO_COLUMNS:
            raise BenchError(f"{path}: header: not the ModelZoo case CSV columns "
                             f"({','.join(MODELZOO_COLUMNS)})")
        out = []
        for line, row in rows:
            if row[0].strip().startswith("#"):
                continue
            if len(row) != len(MODELZOO_COLUMNS):
                raise BenchError(f"{path}: row {line}: {len(row)} cells, expected "
                                 f"{len(MODELZOO_COLUMNS)} (commas inside a cell are not allowed)")
            cells = dict(zip(MODELZOO_COLUMNS, (c.strip() for c in row)))
            out.append((f"row {line}", self._case(path, line, cells)))
        if not out:
            raise BenchError(f"{path}: no case rows below the header")
        return out

    def _case(self, path: str, line: int, cells: dict[str, str]) -> dict:
        name = cells["CASENAME"]
        if not name:
            raise BenchError(f"{path}: row {line}: CASENAME: empty")
        ids = cells["DEVICE_ID"].split()
        if not ids or not all(i.isdigit() for i in ids):
            raise BenchError(f"{path}: row {line}: DEVICE_ID: expected space-separated device "
                             f"ids, got {cells['DEVICE_ID']!r}")
        data: dict = {
            "name": name,
            "model": name.split("_")[0],
            "device": "npu",
            "devices": [len(ids)],
            "npu": {"device_ids": [int(i) for i in ids]},
        }
        if cells["PROFILING_MODE"].upper() == "TRUE":
            data["npu"]["profiling"] = True
            if cells["PROFILING_OPTIONS"]:
                data["npu"]["profiling_options"] = cells["PROFILING_OPTIONS"]
        try:
            words = shlex.split(cells["RUN_ALGORITHM_CMD"])
        except ValueError as exc:
            raise BenchError(f"{path}: row {line}: RUN_ALGORITHM_CMD: {exc}") from None
        for word in words:
            flag, _, value = word.partition("=")
            flag = flag.lstrip("-")
            if word.startswith("--") and flag in MODELZOO_FLAGS and value:
                _set_dotted(data, MODELZOO_FLAGS[flag], _yaml_value(value, f"{path}: row {line}"))
            elif flag == "config_file":
                match = re.search(r"(\d+)bs", value)
                if match and "batch_size" not in data:
                    data["batch_size"] = int(match.group(1))
            elif flag == "eval" and value.lower() in ("true", "false"):
                data.setdefault("eval", {})["at_end"] = value.lower() == "true"
        return data


@hookimpl
def register_case_formats(registry: Any) -> None:
    # The ModelZoo reader is tried first: its files are .csv too.
    registry.add("modelzoo-csv", ModelZooCases())
    registry.add("yaml", YamlCases())
    registry.add("csv", CsvCases())
