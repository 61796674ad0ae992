"""Feature sets: the directory format both trainers write and every metric reads.

Layout (docs/design.md, "The feature-set contract")::

    features.npy     float16|float32 [N, D]  penultimate activations
    labels.npy       int64 [N]               class (vision) or target token id (NMT)
    head_weight.npy  float32 [K, D]          final layer weight
    head_bias.npy    float32 [K]             final layer bias (zeros if none)
    logits.npy       optional float16|float32 [N, K]
    meta.json        {"classes": [K names], "task": "vision"|"nmt", ...}

Reads are memory-mapped (``FeatureSet.features``) or streamed in bounded chunks
(``FeatureSet.iter_chunks``), so an ImageNet-train-size set never has to fit in
memory. Writes go to a temporary sibling directory that is renamed into place
only when complete: a killed writer never leaves a set that looks whole. A writer holds the
set's lock (``shared_metrics.locks``, ``.NAME.lock`` beside it) from start to rename, so a
second writer of the same set fails at once naming the first one's PID, and it removes the
temporary siblings of writers that were killed (``.NAME.tmp-PID-*`` whose PID is dead).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import UserError
from .locks import OutputLock, remove_stale_temporaries
from .report import read_json

FEATURE_DTYPES = (np.float16, np.float32)
TASKS = ("vision", "nmt")
REQUIRED_FILES = ("features.npy", "labels.npy", "head_weight.npy", "head_bias.npy", "meta.json")
#: Rows per streamed chunk are chosen so one float32 chunk stays near this size.
CHUNK_BYTES = 32 * 1024 * 1024


class FeatureSetError(UserError):
    """A feature set is missing, malformed or inconsistent; the message names the file."""


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset of a .npy file, read from its header only."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            offset = f.tell()
    except FileNotFoundError:
        raise FeatureSetError(f"{path}: file not found") from None
    except (ValueError, OSError) as e:
        raise FeatureSetError(f"{path}: not a readable .npy file ({e})") from None
    if fortran:
        raise FeatureSetError(f"{path}: Fortran-ordered arrays are not supported")
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    size = path.stat().st_size
    if size < expected:
        raise FeatureSetError(f"{path}: truncated ({size} bytes, header promises {expected})")
    return tuple(shape), dtype, offset


def _load_small(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FeatureSetError(f"{path}: file not found") from None
    except (ValueError, OSError, EOFError) as e:
        raise FeatureSetError(f"{path}: not a readable .npy file ({e})") from None


def _require_finite(arr: np.ndarray, path: Path, row_offset: int = 0, rows=None) -> None:
    """NaN/inf is an error naming the file row: ``row_offset`` + the block row, or ``rows[i]``
    when the block holds the file rows ``rows``."""
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.argwhere(bad)[0][0])
        row = int(rows[i]) if rows is not None else i + row_offset
        raise FeatureSetError(f"{path}: non-finite value (NaN or inf) in row {row}")


_EXPONENT_BITS = {np.dtype(np.float16): (np.uint16, 0x7C00), np.dtype(np.float32): (np.uint32, 0x7F800000)}


def _require_finite_bits(block: np.ndarray, path: Path, row_offset: int) -> None:
    """Finiteness of a float16/float32 block from its exponent bits (all ones = inf or NaN):
    one integer pass, several times cheaper than np.isfinite on float16."""
    utype, mask = _EXPONENT_BITS[block.dtype]
    if block.size and np.bitwise_and(block.view(utype), mask).max() == mask:
        _require_finite(block, path, row_offset)


def _read_meta(meta_path: Path) -> dict:
    """meta.json: a JSON object whose "classes" are distinct names and whose "task" is known."""
    meta = read_json(meta_path, FeatureSetError)
    if not isinstance(meta, dict):
        raise FeatureSetError(f"{meta_path}: expected a JSON object")
    classes = meta.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise FeatureSetError(f"{meta_path}: 'classes' must be a non-empty list of names")
    if len(set(classes)) != len(classes):
        dup = next(c for c in classes if classes.count(c) > 1)
        raise FeatureSetError(f"{meta_path}: class name {dup!r} appears more than once")
    if meta.get("task", "vision") not in TASKS:
        raise FeatureSetError(f"{meta_path}: 'task' must be one of {TASKS}, got {meta.get('task')!r}")
    return meta


def _read_labels(lpath: Path, N: int, K: int) -> np.ndarray:
    """labels.npy: int64 [N], each one of the K classes."""
    labels = _load_small(lpath)
    if labels.dtype != np.int64 or labels.shape != (N,):
        raise FeatureSetError(
            f"{lpath}: expected int64 [{N}] to match features.npy, got {labels.dtype} {labels.shape}"
        )
    if labels.min() < 0 or labels.max() >= K:
        bad = int(labels[(labels < 0) | (labels >= K)][0])
        raise FeatureSetError(f"{lpath}: label {bad} outside the {K} classes of meta.json")
    return labels


def _read_head(path: Path, K: int, D: int) -> tuple[np.ndarray, np.ndarray]:
    """head_weight.npy [K, D] and head_bias.npy [K]: finite float arrays."""
    wpath, bpath = path / "head_weight.npy", path / "head_bias.npy"
    weight, bias = _load_small(wpath), _load_small(bpath)
    if weight.shape != (K, D):
        raise FeatureSetError(
            f"{wpath}: expected shape [{K}, {D}] (classes x feature dim), got {weight.shape}"
        )
    if bias.shape != (K,):
        raise FeatureSetError(f"{bpath}: expected shape [{K}], got {bias.shape}")
    for arr, p in ((weight, wpath), (bias, bpath)):
        if arr.dtype.kind != "f":
            raise FeatureSetError(f"{p}: expected a float array, got {arr.dtype}")
        _require_finite(arr, p)
    return weight, bias


def _check_logits(gpath: Path, N: int, K: int) -> bool:
    """Whether the optional logits.npy exists; if it does, its header must say float16/32 [N, K]."""
    if not gpath.exists():
        return False
    gshape, gdtype, _ = _npy_header(gpath)
    if gshape != (N, K):
        raise FeatureSetError(f"{gpath}: expected shape [{N}, {K}], got {gshape}")
    if gdtype not in FEATURE_DTYPES:
        raise FeatureSetError(f"{gpath}: dtype must be float16 or float32, got {gdtype}")
    return True


@dataclass
class FeatureSet:
    """A validated, lazily read feature set. Open with :meth:`open`."""

    path: Path
    meta: dict
    labels: np.ndarray
    head_weight: np.ndarray
    head_bias: np.ndarray
    num_samples: int
    dim: int
    feature_dtype: np.dtype
    _feature_offset: int = field(repr=False, default=0)
    has_logits: bool = False

    # ------------------------------------------------------------------ reading
    @classmethod
    def open(cls, path: str | os.PathLike) -> FeatureSet:
        """Validate the directory's shapes, dtypes, labels and class names (cheap: headers,
        labels and the head only). Feature values are checked for finiteness as they are read."""
        path = Path(path)
        if not path.is_dir():
            raise FeatureSetError(f"{path}: feature set directory not found")
        meta = _read_meta(path / "meta.json")
        K = len(meta["classes"])
        fpath = path / "features.npy"
        shape, dtype, offset = _npy_header(fpath)
        if len(shape) != 2 or shape[0] == 0 or shape[1] == 0:
            raise FeatureSetError(f"{fpath}: expected a non-empty 2-D array [N, D], got shape {shape}")
        if dtype not in FEATURE_DTYPES:
            raise FeatureSetError(f"{fpath}: dtype must be float16 or float32, got {dtype}")
        N, D = shape
        labels = _read_labels(path / "labels.npy", N, K)
        weight, bias = _read_head(path, K, D)
        return cls(
            path=path,
            meta=meta,
            labels=labels,
            head_weight=weight.astype(np.float32),
            head_bias=bias.astype(np.float32),
            num_samples=N,
            dim=D,
            feature_dtype=dtype,
            _feature_offset=offset,
            has_logits=_check_logits(path / "logits.npy", N, K),
        )

    @property
    def classes(self) -> list[str]:
        return self.meta["classes"]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def features(self) -> np.ndarray:
        """Memory-mapped, read-only [N, D] features (not checked for finiteness: use
        :meth:`iter_chunks` or :meth:`class_features` for validated reads)."""
        return np.load(self.path / "features.npy", mmap_mode="r")

    @property
    def logits(self) -> np.ndarray:
        if not self.has_logits:
            raise FeatureSetError(f"{self.path}: no logits.npy in this feature set (needed for this metric)")
        return np.load(self.path / "logits.npy", mmap_mode="r")

    def label_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.num_classes)

    def class_index(self, name: str | int) -> int:
        """A class by its name in meta.json or by its index (an int or a string of digits)."""
        if isinstance(name, str) and name in self._name_to_index():
            return self._name_to_index()[name]
        if isinstance(name, (int, np.integer)) or (isinstance(name, str) and name.strip().isdigit()):
            i = int(name)
            if 0 <= i < self.num_classes:
                return i
            raise FeatureSetError(f"{self.path}: class index {i} outside 0..{self.num_classes - 1}")
        raise FeatureSetError(f"{self.path}: unknown class {name!r} (not in meta.json 'classes')")

    def _name_to_index(self) -> dict[str, int]:
        if not hasattr(self, "_n2i"):
            self._n2i = {c: i for i, c in enumerate(self.classes)}
        return self._n2i

    def iter_chunks(
        self, name: str = "features", chunk_rows: int | None = None, classes=None
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Yield ``(row_offset, labels, float32 block)`` of features.npy or logits.npy.

        Plain file reads into a reused buffer (resident memory stays ~2 chunks, unlike a memmap
        whose touched pages count as resident). Every row is checked for finite values, also
        those skipped when ``classes`` (a list of class indices) keeps only some classes' rows;
        skipping saves the float16 -> float32 conversion, the dominant cost."""
        path = self.path / f"{name}.npy"
        shape, dtype, offset = _npy_header(path)
        n, d = shape
        if chunk_rows is None:
            chunk_rows = max(1, CHUNK_BYTES // (4 * d))
        keep = None
        if classes is not None:
            keep = np.zeros(self.num_classes, bool)
            keep[list(classes)] = True
        buf = np.empty((chunk_rows, d), dtype=dtype)
        with open(path, "rb", buffering=0) as f:
            f.seek(offset)
            for start in range(0, n, chunk_rows):
                rows = min(chunk_rows, n - start)
                view = buf[:rows]
                got = f.readinto(memoryview(view.reshape(-1).view(np.uint8)))
                if got != view.nbytes:
                    raise FeatureSetError(f"{path}: truncated at row {start}")
                _require_finite_bits(view, path, start)
                y = self.labels[start : start + rows]
                if keep is not None:
                    mask = keep[y]
                    if not mask.all():
                        view, y = view[mask], y[mask]
                yield start, y, view.astype(np.float32)

    @property
    def logits_source(self) -> str:
        """Where :meth:`iter_logits` reads the logits from."""
        return "logits.npy" if self.has_logits else "features.npy @ head_weight.T + head_bias"

    def iter_logits(
        self, chunk_rows: int | None = None, classes=None
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Yield ``(row_offset, labels, float32 [rows, K] logits)`` in bounded chunks.

        From logits.npy, or, in a set without it (ImageNet train: 1.28 M x 1000 logits are not
        dumped), from the features and the head, z = f W^T + b: the head is the model's last
        layer, so these are the model's own logits up to the features' float16 rounding.
        ``classes`` keeps only those classes' rows, as in :meth:`iter_chunks`; the default chunk
        keeps the wider of a feature block and a logits block near CHUNK_BYTES."""
        if chunk_rows is None:
            chunk_rows = max(1, CHUNK_BYTES // (4 * max(self.dim, self.num_classes)))
        if self.has_logits:
            yield from self.iter_chunks("logits", chunk_rows, classes)
            return
        w_t = self.head_weight.T
        for start, y, f in self.iter_chunks("features", chunk_rows, classes):
            yield start, y, f @ w_t + self.head_bias

    def class_features(self, index: int, max_rows: int | None = None, seed: int = 0) -> np.ndarray:
        """float32 features of one class (optionally a seeded random subsample of max_rows)."""
        rows = np.flatnonzero(self.labels == index)
        if rows.size == 0:
            raise FeatureSetError(f"{self.path}: class {self.classes[index]!r} has no samples")
        if max_rows is not None and rows.size > max_rows:
            rows = np.sort(np.random.default_rng(seed).choice(rows, max_rows, replace=False))
        x = np.asarray(self.features[rows], dtype=np.float32)
        _require_finite(x, self.path / "features.npy", rows=rows)
        return x


# ---------------------------------------------------------------------- writing
def _tmp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _commit_dir(tmp: Path, path: Path, overwrite: bool) -> None:
    """Rename a finished temporary directory into place (atomically when path is new)."""
    if path.exists():
        if not overwrite:
            shutil.rmtree(tmp, ignore_errors=True)
            raise FeatureSetError(f"{path}: already exists (pass overwrite=True to replace it)")
        old = _tmp_sibling(path)
        os.rename(path, old)
        os.rename(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, path)


def _check_meta(meta: dict, K: int) -> dict:
    meta = dict(meta)
    classes = meta.get("classes")
    if not isinstance(classes, list) or len(classes) != K:
        raise FeatureSetError(f"meta['classes'] must list the {K} class names of the head")
    meta["classes"] = [str(c) for c in classes]
    meta.setdefault("task", "vision")
    if meta["task"] not in TASKS:
        raise FeatureSetError(f"meta['task'] must be one of {TASKS}")
    return meta


class FeatureSetWriter:
    """Stream a feature set to disk in blocks, then :meth:`close` renames it into place.

    >>> with FeatureSetWriter(out, num_samples=N, dim=D, head_weight=W, head_bias=b,
    ...                       meta={"classes": names, "task": "vision"}) as w:
    ...     for feats, labels, logits in batches:
    ...         w.append(feats, labels, logits)

    Leaving the ``with`` block by an exception removes the temporary directory; nothing
    appears at ``path``. From construction to :meth:`close` (or :meth:`abort`) the writer holds
    ``path``'s lock: a second writer of the same set raises FeatureSetError naming this one's PID.
    """

    def __init__(
        self,
        path,
        *,
        num_samples: int,
        dim: int,
        head_weight,
        head_bias=None,
        meta: dict,
        dtype=np.float16,
        logits: bool = False,
        logits_dtype=np.float16,
        overwrite: bool = False,
    ):
        self.path = Path(path)
        head_weight = np.asarray(head_weight, dtype=np.float32)
        K = head_weight.shape[0]
        if head_weight.shape != (K, dim):
            raise FeatureSetError(f"head_weight must be [K, {dim}], got {head_weight.shape}")
        head_bias = np.zeros(K, np.float32) if head_bias is None else np.asarray(head_bias, np.float32)
        if head_bias.shape != (K,):
            raise FeatureSetError(f"head_bias must be [{K}], got {head_bias.shape}")
        if np.dtype(dtype) not in FEATURE_DTYPES:
            raise FeatureSetError("feature dtype must be float16 or float32")
        self.meta = _check_meta(meta, K)
        self.overwrite = overwrite
        self.num_samples, self.dim, self.num_classes = num_samples, dim, K
        self.dtype = np.dtype(dtype)
        self.tmp, self._features, self._logits = None, None, None
        self._lock = OutputLock(self.path, "feature set", error=FeatureSetError).acquire()
        try:
            if self.path.exists() and not overwrite:
                raise FeatureSetError(f"{self.path}: already exists (pass overwrite=True to replace it)")
            remove_stale_temporaries(self.path.parent, f".{self.path.name}")  # killed writers' sets
            self.tmp = _tmp_sibling(self.path)
            self.tmp.mkdir()
            np.save(self.tmp / "head_weight.npy", head_weight)
            np.save(self.tmp / "head_bias.npy", head_bias)
            fmt = np.lib.format
            self._features = fmt.open_memmap(self.tmp / "features.npy", "w+", dtype, (num_samples, dim))
            self._labels = np.empty(num_samples, np.int64)
            self._logits = (
                fmt.open_memmap(self.tmp / "logits.npy", "w+", logits_dtype, (num_samples, K))
                if logits
                else None
            )
        except BaseException:
            self.abort()
            raise
        self.count = 0

    def append(self, features, labels, logits=None) -> None:
        features = np.asarray(features)
        n = features.shape[0]
        if features.shape != (n, self.dim):
            raise FeatureSetError(f"features block must be [n, {self.dim}], got {features.shape}")
        if self.count + n > self.num_samples:
            raise FeatureSetError(f"more than the declared {self.num_samples} rows appended")
        rows = f"rows {self.count}..{self.count + n - 1}"
        # Checked after the cast: a value beyond ±65504 becomes inf in float16.
        with np.errstate(over="ignore"):
            features = features.astype(self._features.dtype, copy=False)
        if not np.isfinite(features).all():
            raise FeatureSetError(
                f"non-finite feature value in {rows} (NaN, inf, or too large for {self._features.dtype})"
            )
        labels = np.asarray(labels).astype(np.int64, copy=False).reshape(-1)
        if labels.shape != (n,) or (labels < 0).any() or (labels >= self.num_classes).any():
            raise FeatureSetError(f"labels block must be {n} ints in 0..{self.num_classes - 1}")
        sl = slice(self.count, self.count + n)
        self._features[sl] = features
        self._labels[sl] = labels
        if self._logits is not None:
            if logits is None or np.shape(logits) != (n, self.num_classes):
                raise FeatureSetError(f"logits block must be [{n}, {self.num_classes}]")
            with np.errstate(over="ignore"):
                logits = np.asarray(logits).astype(self._logits.dtype, copy=False)
            if not np.isfinite(logits).all():
                raise FeatureSetError(
                    f"non-finite logit in {rows} (NaN, inf, or too large for {self._logits.dtype})"
                )
            self._logits[sl] = logits
        self.count += n

    def close(self) -> Path:
        if self.count != self.num_samples:
            self.abort()
            raise FeatureSetError(f"{self.path}: {self.count} of {self.num_samples} declared rows written")
        for arr in (self._features, self._logits):
            if arr is not None:
                arr.flush()
        self._features = self._logits = None
        try:
            np.save(self.tmp / "labels.npy", self._labels)
            (self.tmp / "meta.json").write_text(json.dumps(self.meta, indent=1, ensure_ascii=False) + "\n")
            _commit_dir(self.tmp, self.path, self.overwrite)
        except BaseException:
            self.abort()
            raise
        self._lock.release()
        return self.path

    def abort(self) -> None:
        self._features = self._logits = None
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
        self._lock.release()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


def write_feature_set(
    path, features, labels, head_weight, head_bias=None, meta=None, logits=None, overwrite: bool = False
) -> Path:
    """Write a whole in-memory feature set atomically (see :class:`FeatureSetWriter`)."""
    features = np.asarray(features)
    dtype = features.dtype if features.dtype in FEATURE_DTYPES else np.float32
    logits_dtype = np.asarray(logits).dtype if logits is not None else np.float16
    if logits is not None and logits_dtype not in FEATURE_DTYPES:
        logits_dtype = np.float32
    with FeatureSetWriter(
        path,
        num_samples=features.shape[0],
        dim=features.shape[1],
        head_weight=head_weight,
        head_bias=head_bias,
        meta=meta or {},
        dtype=dtype,
        logits=logits is not None,
        logits_dtype=logits_dtype,
        overwrite=overwrite,
    ) as w:
        w.append(features, labels, logits)
    return Path(path)


def concatenate_feature_sets(
    parts, path, *, meta: dict | None = None, overwrite: bool = False, chunk_rows: int = 65536
) -> Path:
    """Write the rows of ``parts`` (feature-set directories, in order) as one set at ``path``.

    The parts must agree on everything but their rows: classes, head weight and bias, feature
    dimension and dtypes, and whether they have logits (as the shards of one model's dump do).
    Rows are streamed in blocks and re-checked for finite values; ``meta`` defaults to the first
    part's. Atomic like :class:`FeatureSetWriter`."""
    sets = [FeatureSet.open(p) for p in parts]
    if not sets:
        raise FeatureSetError(f"{path}: no parts to concatenate")
    first = sets[0]
    logits_dtype = _npy_header(first.path / "logits.npy")[1] if first.has_logits else np.float16
    for s in sets[1:]:
        same = (
            s.classes == first.classes
            and s.dim == first.dim
            and s.feature_dtype == first.feature_dtype
            and s.has_logits == first.has_logits
            and np.array_equal(s.head_weight, first.head_weight)
            and np.array_equal(s.head_bias, first.head_bias)
            and (not s.has_logits or _npy_header(s.path / "logits.npy")[1] == logits_dtype)
        )
        if not same:
            raise FeatureSetError(
                f"{s.path}: not a part of the same feature set as {first.path} "
                "(classes, head, dimension, dtypes or logits differ)"
            )
    with FeatureSetWriter(
        path,
        num_samples=sum(s.num_samples for s in sets),
        dim=first.dim,
        head_weight=first.head_weight,
        head_bias=first.head_bias,
        meta=meta if meta is not None else first.meta,
        dtype=first.feature_dtype,
        logits=first.has_logits,
        logits_dtype=logits_dtype,
        overwrite=overwrite,
    ) as w:
        for s in sets:
            feats, logits = s.features, (s.logits if s.has_logits else None)
            for a in range(0, s.num_samples, chunk_rows):
                b = min(a + chunk_rows, s.num_samples)
                w.append(feats[a:b], s.labels[a:b], None if logits is None else logits[a:b])
    return Path(path)
