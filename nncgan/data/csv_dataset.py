"""NNC CSV datasets: the format Neural Network Console and ``nnabla_cli`` read.

The header names the variables, one cell per column: ``name[__index][:label]``; ``x:image``
is variable x (":image" is only a display label), ``x__0,x__1,...`` are the elements of a
vector variable x. A cell is a number or a path, relative to the CSV file, of an image (or
of a CSV holding an array). The header is parsed and every file read by NNabla's own
``CsvDataSource``, so a CSV nncgan accepts is one NNC accepts, with images as NNC feeds them:
uint8 (C, H, W), scaled by 1/255 at batch time (NNC's Image Normalization).

What nncgan adds is checking, with the CSV row in every message: cells per row, files
present and readable, every image the shape of the first row's, numeric cells numbers.
Variables and shapes come from the header and the first row (read at parse time, so the
graph's Inputs are checked against them); the rest is checked when loading, before training.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..images import is_image
from .kind import DatasetInfo
from .samples import Arrays, Samples, fits_in_memory, read_all

FLOAT32_MAX = float(np.finfo(np.float32).max)


def _number(cell):
    try:
        return float(cell)
    except ValueError:
        return None


class CsvTable:
    """One NNC CSV file: header and rows from nnabla's CsvDataSource, read row by row with checks."""

    def __init__(self, path):
        from nnabla.utils.data_source_implements import CsvDataSource
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: no such CSV file" if not self.path.exists()
                            else f"{self.path}: not a file")
        try:
            self.src = CsvDataSource(str(self.path), shuffle=False, normalize=False)
        except StopIteration:
            raise DataError(f"{self.path}: empty; an NNC CSV dataset starts with a header such as "
                            f"x:image,y:label") from None
        except (OSError, UnicodeDecodeError, csv.Error, IndexError) as e:
            raise DataError(f"{self.path}: cannot read the CSV ({e})") from None
        self.columns = self.src._columns      # [(variable, index or None, label)], as nnabla parsed them
        self.rows = self.src._rows
        self.variables = tuple(self.src.variables)
        if not self.rows:
            raise DataError(f"{self.path}: the header has no rows under it")
        self.images = tuple(v for v in self.variables if self._is_image(self._cells(0, v)))
        self._first = self.sample(0)
        self.shapes = {v: a.shape for v, a in zip(self.variables, self._first)}
        self.dtypes = {v: a.dtype for v, a in zip(self.variables, self._first)}

    def where(self, i):
        return f"{self.path}: row {i + 1} (line {i + 2})"

    def __len__(self):
        return len(self.rows)

    def _cells(self, i, var):
        return [c for c, (v, _, _) in zip(self.rows[i], self.columns) if v == var]

    @staticmethod
    def _is_image(cells):
        return len(cells) == 1 and _number(cells[0]) is None \
            and is_image(cells[0])

    def file_of(self, cell):
        return (self.path.parent / cell).resolve() if not os.path.isabs(cell) else Path(cell)

    def check_row(self, i):
        """Cell count, and every path cell naming an existing file; cheap (no file is read)."""
        row = self.rows[i]
        if len(row) != len(self.columns):
            raise DataError(f"{self.where(i)}: {len(row)} cells, the header has {len(self.columns)}")
        for cell, (var, index, _) in zip(row, self.columns):
            if _number(cell) is not None:
                continue
            if cell.strip() == "":
                raise DataError(f"{self.where(i)}: the cell of '{var}' is empty")
            if index is not None:  # x__0 ... hold numbers only
                raise DataError(f"{self.where(i)}: '{var}__{index}' must be a number, got {cell!r}")
            f = self.file_of(cell)
            if not f.is_file():
                raise DataError(f"{self.where(i)}: {f}: no such file (the cell of '{var}' is {cell!r}, "
                                f"relative to the CSV)")

    def check_image_sizes(self, i):
        """Height and width of row i's images from their headers alone (no pixels decoded), so a
        streamed dataset's odd image stops the run before training, not in the middle of it."""
        from PIL import Image
        for var in self.images:
            f = self.file_of(self._cells(i, var)[0])
            try:
                with Image.open(f) as im:
                    hw = (im.height, im.width)
            except Exception as e:  # PIL raises several types for what is not an image
                raise DataError(f"{self.where(i)}: {f}: cannot read ({type(e).__name__}: {e})") from None
            if hw != self.shapes[var][1:]:
                raise DataError(f"{self.where(i)}: {f}: image of '{var}' is {hw[0]}x{hw[1]} (height x width); "
                                f"row 1's is {self.shapes[var][1]}x{self.shapes[var][2]}")

    def sample(self, i):
        """Row i as a tuple of arrays, one per variable; DataError names the row and the file."""
        self.check_row(i)
        values = {}
        for cell, (var, index, _) in zip(self.rows[i], self.columns):
            try:
                value = self.src._get_value(cell, is_vector=index is None)
            except Exception as e:  # PIL and nnabla's loaders raise many types for a bad file
                raise DataError(f"{self.where(i)}: {self.file_of(cell)}: cannot read ({type(e).__name__}: {e})") from None
            if index is None:
                values[var] = value
            else:
                values.setdefault(var, []).append(value)
        out = []
        for var in self.variables:
            a = np.asarray(values[var])
            if a.dtype != np.uint8:
                with np.errstate(over="ignore"):  # beyond float32 becomes inf, refused just below
                    a = a.astype(np.float32)
            if a.dtype != np.uint8 and not np.isfinite(a).all():  # inf, nan, or beyond float32 (1e39)
                raise DataError(f"{self.where(i)}: '{var}' must hold finite numbers, got "
                                f"{', '.join(self._cells(i, var))[:80]}")
            if hasattr(self, "shapes") and a.shape != self.shapes[var]:  # row 1 sets the shapes
                if var in self.images:
                    raise DataError(f"{self.where(i)}: {self.file_of(self._cells(i, var)[0])}: image of '{var}' "
                                    f"is {a.shape} (channels, height, width); row 1's is {self.shapes[var]}")
                raise DataError(f"{self.where(i)}: '{var}' has shape {a.shape}; row 1's is {self.shapes[var]}")
            out.append(a)
        return tuple(out)

    def column(self, var):
        """A numeric variable for every row, without reading any file: (N, size) float32."""
        cols = [k for k, (v, _, _) in enumerate(self.columns) if v == var]
        out = np.empty((len(self.rows), len(cols)), np.float32)
        for i, row in enumerate(self.rows):
            self.check_row(i)
            for j, k in enumerate(cols):
                x = _number(row[k])
                if x is None or not abs(x) <= FLOAT32_MAX:  # inf, nan, or inf once float32 (1e39)
                    raise DataError(f"{self.where(i)}: '{var}' must be a finite number, got {row[k]!r}")
                out[i, j] = x
        return out

    def classes(self):
        """Labels of `y` as 0..K-1 -> K; 0 when there is no scalar integer `y` (unlabelled)."""
        if "y" not in self.variables or "y" in self.images or self.shapes["y"] != (1,):
            return 0
        y = self.column("y")[:, 0]
        if np.any(y < 0) or np.any(y != np.floor(y)):
            return 0
        # The classes 0..max, each needing a row, found from the labels present (never a set of
        # range(max): a label of 1e8 would build one of 10^8 numbers).
        present = [int(v) for v in np.unique(y).tolist()]  # Python ints: a label may be 3e38
        k = present[-1] + 1
        if len(present) < k:
            missing, expect = [], 0
            for v in present:
                missing += range(expect, min(v, expect + 5 - len(missing)))
                expect = v + 1
                if len(missing) >= 5:
                    break
            more = k - len(present) - len(missing)
            big = int(np.argmax(y))
            raise DataError(f"{self.path}: labels of 'y' run 0..{k - 1} but no row has label "
                            f"{', '.join(map(str, missing))}{f' (and {more:,} more)' if more else ''}: "
                            f"an empty class" + (f"; the largest, {self._cells(big, 'y')[0]}, is in row {big + 1} (line {big + 2})" if more else ""))
        return k


class CsvSamples(Samples):
    """A CSV dataset too large for memory: each sample read from its files when the iterator asks."""

    def __init__(self, table):
        self.table = table
        self.variables = table.variables

    def __len__(self):
        return len(self.table)

    def sample(self, i):
        return self.table.sample(i)

    def column(self, var):
        return self.table.column(var)

    def where(self, i):
        return self.table.where(i)


def load_table(table, log=print):
    """All rows checked; arrays in memory when they fit (every file read now), else streamed."""
    n = len(table)
    for i in range(n):
        table.check_row(i)  # a missing file or short row stops here, before training
    shapes = [table.shapes[v] for v in table.variables]
    dtypes = [table.dtypes[v] for v in table.variables]
    if not fits_in_memory(n, shapes, dtypes):
        for i in range(n):
            table.check_image_sizes(i)
        log(f"{table.path}: {n} samples, streamed from disk (more than the memory limit)")
        return CsvSamples(table)
    arrays = read_all(n, table.variables, shapes, dtypes, table.sample)
    log(f"{table.path}: {n} samples in memory")
    return Arrays(arrays, table.where)


def describe(path):
    """What a CSV dataset holds: variables and shapes from the header and row 1, classes of `y`."""
    table = CsvTable(path)
    variables = {v: tuple(table.shapes[v]) for v in table.variables}
    doc = ", ".join(f"{v} {'image ' if v in table.images else ''}{variables[v]}" for v in table.variables)
    return DatasetInfo(f"csv:{path}", variables, table.classes(), table.images, f"NNC CSV dataset {path}: {doc}")
