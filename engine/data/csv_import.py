"""CSV import with the ``csv`` module (no pandas).

Students bring messy spreadsheets, so this module spends its effort on
explaining problems: missing cells are reported by row and column, text in a
numeric column is pointed at, an unknown target lists the columns that exist.
Row numbers in messages are line numbers in the file (the header is row 1), the
way a spreadsheet shows them.
"""
from __future__ import annotations

import csv
import io
import os
import re
from typing import Any

import numpy as np

from engine.errors import DataError, name_list, quote
from engine.data.dataset import TaskDecision, check_float32_range, decide_task, encode_labels
from engine.data.params import get_choice, get_int, get_path
from engine.limits import DATASET_COPIES, check_memory, memory_limit, read_regular

DEFAULTS: dict[str, Any] = {
    "path": None,
    "target": None,          # column name, column index, or a list of names (several regression targets); None = last column
    "header": "auto",        # "auto" | true | false
    "delimiter": "auto",     # "auto" sniffs among , ; tab |
    "decimal": "auto",       # "auto" | "." | ",": "auto" takes "1,5" as 1.5 in files not delimited by commas
    "categorical": "onehot",  # "onehot" | "reject"
    "task": "auto",          # "auto" | "classification" | "regression"
    "ignore": [],            # columns left out of the features (ids, free text)
    "max_categories": 50,    # more distinct text values than this is probably not a category
}

MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})

_SHOW = 5  # how many offending cells to name in one message

#: parsed CSV text takes about this many times its size in Python objects (a str per cell, lists)
CSV_EXPANSION = 32
#: the memory one parsed cell takes at least (a str object and its slots in the row and column lists)
CELL_BYTES = 80
MAX_COLUMNS = 100_000


def _is_missing(cell: str) -> bool:
    return cell.strip().lower() in MISSING_TOKENS


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return not _is_missing(cell)


def _read_text(path: str) -> str:
    raw = read_regular(path, memory_limit() // CSV_EXPANSION, DataError, "CSV file")
    if b"\x00" in raw[:65536]:
        raise DataError(f"{path}: looks like a binary file, not CSV text; export it as CSV first.")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Excel on Windows writes cp1252; latin-1 decodes any byte, so it is the fallback
        return raw.decode("latin-1")


_COMMA_DECIMAL = re.compile(r"^[+-]?\d*,\d+([eE][+-]?\d+)?$")
_POINT_DECIMAL = re.compile(r"^[+-]?\d*\.\d+([eE][+-]?\d+)?$")


def _uses_decimal_comma(rows: list[list[str]]) -> bool:
    """European spreadsheets write 1,5 for 1.5 (and then delimit with ;).  Decided on the
    whole file: some cell must look like a decimal-comma number and none like a decimal-point one."""
    comma = point = False
    for row in rows[:2000]:
        for cell in row:
            comma = comma or bool(_COMMA_DECIMAL.match(cell))
            point = point or bool(_POINT_DECIMAL.match(cell))
    return comma and not point


def _parse_rows(text: str, path: str, delimiter: str, decimal: str = ".") -> tuple[list[list[str]], list[int]]:
    if delimiter == "auto":
        try:
            delimiter = csv.Sniffer().sniff(text[:65536], delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    rows, lines = [], []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    max_cells, cells = memory_limit() // CELL_BYTES, 0
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue  # blank lines are layout, not data
            if len(row) > MAX_COLUMNS:
                raise DataError(f"{path}: row {reader.line_num} has {len(row):,} fields; LayerLab reads tables "
                                f"of at most {MAX_COLUMNS:,} columns.")
            cells += len(row)
            if cells > max_cells:
                check_memory(cells * CELL_BYTES, f"{path}: the table's cells (more than {cells:,} by row "
                                                 f"{reader.line_num})")
            rows.append([cell.strip() for cell in row])
            lines.append(reader.line_num)
    except csv.Error as e:
        raise DataError(f"{path}: cannot be parsed as CSV near row {reader.line_num} ({str(e)[:60]}); "
                        "check the quotes on that line.") from e
    if not rows:
        raise DataError(f"{path}: the file is empty; it needs a header row and data rows.")
    if decimal == "," or (decimal == "auto" and delimiter != "," and _uses_decimal_comma(rows)):
        rows = [[c.replace(",", ".") if _COMMA_DECIMAL.match(c) else c for c in row] for row in rows]
    width = len(rows[0])
    for row, line in zip(rows, lines):
        if len(row) != width:
            raise DataError(f"{path}: row {line} has {len(row)} fields but row {lines[0]} has {width}; "
                            "check that row for a missing or extra delimiter or an unclosed quote.")
    return rows, lines


def detect_header(rows: list[list[str]]) -> bool:
    """A first row is a header when, in the columns whose other cells are numeric,
    it is mostly text.  Files with only text columns have a header when no
    first-row cell reappears further down its column."""
    if len(rows) < 2:
        return False
    first, body = rows[0], rows[1:1001]
    header_votes = data_votes = 0
    for j, head in enumerate(first):
        cells = [r[j] for r in body if not _is_missing(r[j])]
        if not cells:
            continue
        if sum(map(_is_number, cells)) >= 0.9 * len(cells):
            if _is_number(head):
                data_votes += 1
            elif not _is_missing(head):
                header_votes += 1
    if header_votes or data_votes:
        return header_votes > data_votes
    return all(head and head not in {r[j] for r in body} for j, head in enumerate(first))


def _column_names(first: list[str] | None, width: int) -> list[str]:
    if first is None:
        return [f"col{j}" for j in range(width)]
    names, seen = [], set()
    for j, raw in enumerate(first):
        name = raw or f"col{j}"
        base, k = name, 2
        while name in seen:  # duplicate headers would make targets ambiguous
            name, k = f"{base}_{k}", k + 1
        seen.add(name)
        names.append(name)
    return names


def _resolve_column(ref: Any, names: list[str], path: str, has_header: bool, what: str) -> int:
    if isinstance(ref, bool):
        ref = str(ref)
    if isinstance(ref, int):
        if -len(names) <= ref < len(names):
            return ref % len(names)
        raise DataError(f"{path}: {what} column number {ref} is out of range; the file has {len(names)} "
                        f"columns (0..{len(names) - 1}).")
    if isinstance(ref, str):
        if ref in names:
            return names.index(ref)
        folded = [j for j, n in enumerate(names) if n.lower() == ref.strip().lower()]
        if len(folded) == 1:
            return folded[0]
        if not has_header and ref.strip().lstrip("-").isdigit():
            return _resolve_column(int(ref), names, path, has_header, what)
    hint = "" if has_header else " (the file has no header row, so use a column number or col0, col1, ...)"
    raise DataError(f"{path}: no column named {quote(ref)} for the {what}; the columns are: "
                    f"{name_list(names)}{hint}.")


def _report_missing(rows, lines, names, used: list[int], path: str) -> None:
    found = [(line, j) for row, line in zip(rows, lines) for j in used if _is_missing(row[j])]
    if not found:
        return
    shown = ", ".join(f"row {line} column {quote(names[j])}" for line, j in found[:_SHOW])
    more = f" (and {len(found) - _SHOW} more)" if len(found) > _SHOW else ""
    raise DataError(f"{path}: missing values at {shown}{more}; fill or drop these rows.")


def _as_numbers(cells: list[str]) -> np.ndarray | None:
    """The column as float64, or None if some cell is not a number."""
    try:
        return np.asarray(cells, dtype=np.float64)
    except ValueError:
        pass
    try:  # numpy's parser is stricter than float() (e.g. "1_000"); agree with _is_number
        return np.asarray([float(c) for c in cells], dtype=np.float64)
    except ValueError:
        return None


def _text_cells(cells: list[str], lines: list[int]) -> list[tuple[int, str]]:
    return [(line, c) for c, line in zip(cells, lines) if not _is_number(c)]


def _encode_target(cells, lines, name, task, path):
    """``(TaskDecision, y, class_names)`` for a single target column."""
    numbers = _as_numbers(cells)
    decision = decide_task(np.asarray(cells) if numbers is None else numbers, task,
                           f"the target column {quote(name)}", typed=False)
    if decision.task == "regression":
        if numbers is None:
            line, cell = _text_cells(cells, lines)[0]
            raise DataError(f"{path}: target column {quote(name)} holds text ({quote(cell)} at row {line}) so it "
                            "cannot be a regression target; use task 'classification' or fix the column.")
        return decision, numbers.reshape(-1, 1), None
    labels, class_names = encode_labels(numbers if numbers is not None else np.asarray(cells))
    if len(class_names) < 2:
        raise DataError(f"{path}: target column {quote(name)} has only one value ({quote(class_names[0])}); "
                        "a classifier needs at least two classes -- is this the right target column?")
    return decision, labels, class_names


def load_csv(spec: dict, base_dir=None) -> dict:
    path = get_path(spec, "path", base_dir)
    header = spec.get("header", "auto")
    if header not in ("auto", True, False):
        raise DataError(f"data spec (csv): 'header' must be \"auto\", true or false, got {quote(header)}.")
    delimiter = spec.get("delimiter", "auto")
    if not isinstance(delimiter, str) or (delimiter != "auto" and len(delimiter) != 1):
        raise DataError(f"data spec (csv): 'delimiter' must be \"auto\" or one character, got {quote(delimiter)}.")
    decimal = get_choice(spec, "decimal", "auto", ("auto", ".", ","))
    categorical = get_choice(spec, "categorical", "onehot", ("onehot", "reject"))
    task = get_choice(spec, "task", "auto", ("auto", "classification", "regression"))
    max_categories = get_int(spec, "max_categories", 50, minimum=2)
    ignore = spec.get("ignore") or []
    if not isinstance(ignore, list):
        ignore = [ignore]

    rows, lines = _parse_rows(_read_text(path), path, delimiter, decimal)
    has_header = detect_header(rows) if header == "auto" else header
    width = len(rows[0])
    names = _column_names(rows[0] if has_header else None, width)
    if has_header:
        rows, lines = rows[1:], lines[1:]
    if len(rows) < 2:
        raise DataError(f"{path}: only {len(rows)} data row{'' if len(rows) == 1 else 's'}"
                        f"{' under its header' if has_header else ' (no header row was found)'}; at least 2 are needed.")

    target_ref = spec.get("target")
    if target_ref is None:
        target_ref = -1
    refs = target_ref if isinstance(target_ref, list) else [target_ref]
    if not refs:
        raise DataError(f"{path}: 'target' is an empty list; name the target column.")
    targets = [_resolve_column(r, names, path, has_header, "target") for r in refs]
    dropped = {_resolve_column(r, names, path, has_header, "ignored") for r in ignore}
    features = [j for j in range(width) if j not in targets and j not in dropped]
    if not features:
        raise DataError(f"{path}: no feature columns are left besides the target; "
                        "the file needs at least one input column.")

    _report_missing(rows, lines, names, features + targets, path)
    columns = {j: [r[j] for r in rows] for j in features + targets}

    if len(targets) == 1:
        decision, y, class_names = _encode_target(columns[targets[0]], lines, names[targets[0]], task, path)
    else:
        if task == "classification":
            raise DataError(f"{path}: classification needs exactly one target column, got {len(targets)}.")
        parts = []
        for j in targets:
            numbers = _as_numbers(columns[j])
            if numbers is None:
                line, cell = _text_cells(columns[j], lines)[0]
                raise DataError(f"{path}: target column {quote(names[j])} holds text ({quote(cell)} at row {line}); "
                                "several target columns are only possible for numeric regression.")
            parts.append(numbers)
        decision = TaskDecision("regression", f"regression, because {len(targets)} target columns are predicted")
        y, class_names = np.stack(parts, axis=1), None

    blocks, feature_names = [], []
    for j in features:
        cells = columns[j]
        numbers = _as_numbers(cells)
        if numbers is not None:
            check_float32_range(numbers, f"column {quote(names[j])}", path)
            blocks.append(numbers.reshape(-1, 1))
            feature_names.append(names[j])
            continue
        text = _text_cells(cells, lines)
        examples = ", ".join(f"{quote(c)} at row {line}" for line, c in text[:3])
        if len(text) < len(cells) / 2:
            # mostly numbers: a typo, not a category -- one-hot would hide it
            raise DataError(f"{path}: column {quote(names[j])} is numeric except for {len(text)} cell(s) "
                            f"({examples}); fix those cells or drop the rows.")
        if categorical == "reject":
            raise DataError(f"{path}: column {quote(names[j])} is not numeric ({examples}); convert it to "
                            "numbers, list it under \"ignore\", or set \"categorical\": \"onehot\".")
        categories = sorted(set(cells))
        if len(categories) == len(cells) >= 10:
            raise DataError(f"{path}: column {quote(names[j])} has a different text value in every row, so it "
                            "looks like a name or id rather than a category; list it under \"ignore\".")
        if len(categories) > max_categories:
            raise DataError(f"{path}: column {quote(names[j])} has {len(categories)} distinct text values, too "
                            f"many to one-hot encode (limit {max_categories}); list it under \"ignore\" "
                            "or raise \"max_categories\".")
        check_memory(len(cells) * len(categories) * 8, f"{path}: one-hot encoding column {quote(names[j])}")
        index = {c: k for k, c in enumerate(categories)}
        onehot = np.zeros((len(cells), len(categories)))
        onehot[np.arange(len(cells)), [index[c] for c in cells]] = 1.0
        blocks.append(onehot)
        feature_names.extend(f"{names[j]}={c}" for c in categories)

    n_values = len(rows) * sum(b.shape[1] for b in blocks)
    check_memory(n_values * (8 + 4 * DATASET_COPIES), f"{path}: a table of {len(rows):,} rows × "
                                                      f"{len(feature_names):,} features")
    return {
        "name": os.path.basename(path),
        "task": decision.task,
        "x": np.concatenate(blocks, axis=1).astype(np.float32),
        "y": y,
        "class_names": class_names,
        "feature_names": feature_names,
        "task_rule": decision.rule,
        "notices": [decision.notice] if decision.notice else [],
    }


def csv_encoding(spec: dict, base_dir=None) -> dict:
    """How ``load_csv`` reads and encodes this spec's file, as plain data: the resolved delimiter,
    decimal commas, header, column names, feature columns (numeric, or one-hot over which
    categories) and target columns.  An exported package's data.py reads new CSV files with it."""
    path = get_path(spec, "path", base_dir)
    loaded = load_csv(spec, base_dir)  # every check, and the class names / feature order it produced
    text = _read_text(path)
    delimiter = spec.get("delimiter", "auto")
    if delimiter == "auto":
        try:
            delimiter = csv.Sniffer().sniff(text[:65536], delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    decimal = spec.get("decimal", "auto")
    rows, _ = _parse_rows(text, path, delimiter, ".")
    decimal_comma = decimal == "," or (decimal == "auto" and delimiter != "," and _uses_decimal_comma(rows))
    rows, lines = _parse_rows(text, path, delimiter, decimal)
    header = spec.get("header", "auto")
    has_header = detect_header(rows) if header == "auto" else bool(header)
    names = _column_names(rows[0] if has_header else None, len(rows[0]))
    body = rows[1:] if has_header else rows
    target_ref = spec.get("target")
    refs = target_ref if isinstance(target_ref, list) else [-1 if target_ref is None else target_ref]
    targets = [_resolve_column(r, names, path, has_header, "target") for r in refs]
    ignore = spec.get("ignore") or []
    ignore = ignore if isinstance(ignore, list) else [ignore]
    dropped = {_resolve_column(r, names, path, has_header, "ignored") for r in ignore}
    features = []
    for j in range(len(names)):
        if j in targets or j in dropped:
            continue
        numeric = _as_numbers([r[j] for r in body]) is not None
        features.append({"column": names[j], "categories": None if numeric else sorted({r[j] for r in body})})
    return {"delimiter": delimiter, "decimal_comma": bool(decimal_comma), "header": bool(has_header), "columns": names,
            "features": features, "targets": [names[j] for j in targets],
            "target_numeric": _as_numbers([r[targets[0]] for r in body]) is not None,
            "task": loaded["task"], "class_names": loaded["class_names"] or [],
            "feature_names": loaded["feature_names"]}
