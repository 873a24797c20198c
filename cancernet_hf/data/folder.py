"""Scan a dataset folder, report what is usable, and load it as a `datasets.DatasetDict`.

Accepted layouts (the class folders are matched through the taxonomy, case/underscore tolerant):
- ``DIR/<Main>/<sub>/*.jpg``: the Kaggle "Multi Cancer" download;
- the same inside one or more wrapper folders, e.g. ``DIR/Multi Cancer/<Main>/<sub>/*.jpg`` (the
  current Kaggle zip nests twice): a level whose only visible child is one unknown folder is a wrapper;
- ``DIR/<sub>/*.jpg``: flat, the main class comes from the taxonomy.

Hidden files/folders and OS litter are skipped silently; unknown class folders are an error that
names them and the expected names. Files are checked in parallel at header level plus a draft-mode
thumbnail decode (see `images.inspect_image`), so 130k JPEGs take a minute or two, not an hour.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from ..constants import IGNORED_DIR_NAMES, IGNORED_FILE_NAMES, IMAGE_EXTENSIONS, SPLITS
from ..errors import BadImageError, DatasetLayoutError, SplitError, TaxonomyError, did_you_mean
from ..taxonomy import MULTI_CANCER, Taxonomy
from .images import NOT_AN_IMAGE, UNREADABLE, ZERO_BYTE, inspect_image

if TYPE_CHECKING:  # `datasets` is imported inside the functions: `cancernet data validate` stays light
    import datasets

logger = logging.getLogger(__name__)

LAYOUT_MAIN_SUB = "main/sub"
LAYOUT_SUB = "sub"
# How many single-folder wrapper levels are looked through (the Kaggle zip needs one).
MAX_WRAPPER_LEVELS = 3
# Below this many files per worker, starting processes costs more than it saves.
_MIN_FILES_PER_WORKER = 200

_IGNORED_FILES = frozenset(n.casefold() for n in IGNORED_FILE_NAMES)
_IGNORED_DIRS = frozenset(n.casefold() for n in IGNORED_DIR_NAMES)


@dataclass(frozen=True)
class ImageRecord:
    """One usable image: path relative to the dataset root (POSIX), its sub-class and main class."""

    path: str
    sub: str
    main: str


@dataclass(frozen=True)
class BadFile:
    """One unusable file and why (`reason` is one of `images.BAD_REASONS`)."""

    path: str
    reason: str
    detail: str = ""


@dataclass
class ScanReport:
    """Findings of `scan_folder`; pure data plus `to_dict`/`save`/`summary`."""

    input_dir: Path
    root: Path
    layout: str
    taxonomy: Taxonomy
    files: list[ImageRecord]
    bad_files: list[BadFile]
    counts_sub: dict[str, int]
    counts_main: dict[str, int]
    checked_images: bool
    # Files beside the class folders (README, zips...), relative to `input_dir`; ignored.
    stray_files: list[str] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)
    formats: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        """At least two classes with at least one usable image: the least a classifier needs."""
        return sum(1 for n in self.counts_sub.values() if n > 0) >= 2

    @property
    def wrapper(self) -> str | None:
        """Wrapper folders between the given folder and the class folders (e.g. 'Multi Cancer')."""
        rel = self.root.relative_to(self.input_dir)
        return None if rel == Path(".") else rel.as_posix()

    @property
    def bad_by_reason(self) -> dict[str, int]:
        return dict(sorted(Counter(b.reason for b in self.bad_files).items()))

    def to_dict(self, *, include_files: bool = False) -> dict:
        data = {
            "input_dir": str(self.input_dir),
            "root": str(self.root),
            "layout": self.layout,
            "wrapper": self.wrapper,
            "taxonomy": self.taxonomy.name,
            "checked_images": self.checked_images,
            "usable": self.usable,
            "num_usable": len(self.files),
            "num_bad": len(self.bad_files),
            "num_stray": len(self.stray_files),
            "counts_main": dict(self.counts_main),
            "counts_sub": dict(self.counts_sub),
            "bad_by_reason": self.bad_by_reason,
            "sizes": dict(self.sizes),
            "modes": dict(self.modes),
            "formats": dict(self.formats),
            "warnings": list(self.warnings),
            "bad_files": [{"path": b.path, "reason": b.reason, "detail": b.detail} for b in self.bad_files],
            "stray_files": list(self.stray_files),
        }
        if include_files:
            data["files"] = [{"path": f.path, "sub": f.sub, "main": f.main} for f in self.files]
        return data

    def save(self, path: str | Path, *, include_files: bool = False) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(self.to_dict(include_files=include_files), indent=2) + "\n", encoding="utf-8"
        )
        return path

    def summary(self, *, max_bad_listed: int = 10) -> str:
        layout = "<Main>/<sub>" if self.layout == LAYOUT_MAIN_SUB else "<sub> (flat)"
        where = f", inside wrapper folder {self.wrapper!r}" if self.wrapper else ""
        checked = "" if self.checked_images else " (images not decoded: --no-check)"
        lines = [
            f"Dataset: {self.root}",
            f"Layout: {layout}{where}; taxonomy {self.taxonomy.name!r} "
            f"({self.taxonomy.num_main} main classes, {self.taxonomy.num_sub} sub-classes)",
            f"Images: {len(self.files):,} usable{checked}, {len(self.bad_files):,} unusable (skipped), "
            f"{len(self.stray_files):,} stray files outside class folders (ignored)",
        ]
        if self.bad_files:
            lines.append(
                "Unusable by reason: " + ", ".join(f"{r}: {n}" for r, n in self.bad_by_reason.items())
            )
            for bad in self.bad_files[:max_bad_listed]:
                lines.append(f"  {bad.path}: {bad.reason}" + (f" ({bad.detail})" if bad.detail else ""))
            if len(self.bad_files) > max_bad_listed:
                lines.append(f"  ... and {len(self.bad_files) - max_bad_listed} more (see --report)")
        if self.sizes:
            lines.append("Sizes: " + _top(self.sizes))
            lines.append("Modes: " + _top(self.modes))
        lines.append("Per class (usable images):")
        width = max(len(n) for n in (*self.taxonomy.sub_names, *self.taxonomy.main_names)) + 4
        for main in self.taxonomy.main_names:
            lines.append(f"  {main:<{width}}{self.counts_main.get(main, 0):>8,}")
            for sub in self.taxonomy.sub_names:
                if self.taxonomy.main_of(sub) == main:
                    lines.append(f"    {sub:<{width - 2}}{self.counts_sub.get(sub, 0):>8,}")
        lines.extend(f"Warning: {w}" for w in self.warnings)
        lines.append(
            "Status: USABLE"
            if self.usable
            else "Status: NOT USABLE (a classifier needs usable images in at least 2 classes)"
        )
        return "\n".join(lines)


def scan_folder(
    root: str | Path,
    taxonomy: Taxonomy = MULTI_CANCER,
    *,
    check_images: bool = True,
    num_workers: int | None = None,
    progress: bool = True,
) -> ScanReport:
    """Find the class folders under `root`, list every file, check images, count per class.

    Raises `DatasetLayoutError` when `root` is missing or its folders do not match the taxonomy.
    Unusable files never raise: they are listed in `.bad_files` with a reason. `num_workers`
    defaults to `os.cpu_count()`; `check_images=False` only lists files (zero-byte ones excluded).
    """
    input_dir = Path(root).expanduser().resolve()
    if not input_dir.is_dir():
        what = "does not exist" if not input_dir.exists() else "is not a folder"
        raise DatasetLayoutError(
            f"Dataset folder {input_dir} {what}. Pass the folder that holds the class folders "
            "(e.g. the unzipped Kaggle 'Multi Cancer' folder)."
        )
    dataset_root, layout, class_dirs, stray = _find_class_folders(input_dir, taxonomy)
    candidates, bad, more_stray = _list_files(input_dir, dataset_root, layout, class_dirs, taxonomy)
    stray += more_stray

    files: list[ImageRecord] = []
    sizes: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    formats: Counter[str] = Counter()
    if check_images:
        results = _check_files([dataset_root / c.path for c in candidates], num_workers, progress)
        for record, result in zip(candidates, results):
            if result[0]:
                _, width, height, mode, fmt = result
                files.append(record)
                sizes[f"{width}x{height}"] += 1
                modes[mode] += 1
                formats[str(fmt)] += 1
            else:
                bad.append(BadFile(record.path, result[1], result[2]))
    else:
        files = candidates

    counts_sub = {s: 0 for s in taxonomy.sub_names}
    counts_sub.update(Counter(f.sub for f in files))
    counts_main = {m: 0 for m in taxonomy.main_names}
    counts_main.update(Counter(f.main for f in files))
    empty = [s for s, n in counts_sub.items() if n == 0]
    warnings = [f"{len(empty)} sub-classes have no usable image: {', '.join(empty)}"] if empty else []
    if stray:
        warnings.append(f"{len(stray)} files lie outside the class folders and were ignored")
    report = ScanReport(
        input_dir=input_dir,
        root=dataset_root,
        layout=layout,
        taxonomy=taxonomy,
        files=sorted(files, key=lambda f: f.path),
        bad_files=sorted(bad, key=lambda b: b.path),
        counts_sub=counts_sub,
        counts_main=counts_main,
        checked_images=check_images,
        stray_files=sorted(stray),
        sizes=dict(sizes.most_common()),
        modes=dict(modes.most_common()),
        formats=dict(formats.most_common()),
        warnings=warnings,
    )
    for w in warnings:  # summary() shows them; load_image_folder raises them to warnings
        logger.debug("%s: %s", dataset_root, w)
    return report


def dataset_features(taxonomy: Taxonomy = MULTI_CANCER) -> datasets.Features:
    """The `datasets.Features` every loaded split has (image, sub label, main label, relative path)."""
    import datasets

    return datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=taxonomy.sub_names),
            "main_label": datasets.ClassLabel(names=taxonomy.main_names),
            "path": datasets.Value("string"),
        }
    )


def load_image_folder(
    root: str | Path,
    taxonomy: Taxonomy = MULTI_CANCER,
    *,
    split_file: str | Path | None = None,
    scan: ScanReport | None = None,
    check_images: bool | None = None,
    num_workers: int | None = None,
    progress: bool = True,
) -> datasets.DatasetDict:
    """Load the usable images of a dataset folder as a `datasets.DatasetDict`.

    Columns: ``image`` (`datasets.Image`, decoded lazily in the file's own mode: call
    `images.to_rgb` on it, as the transforms do, because `Image(mode="RGB")` clips 16-bit images),
    ``label`` (sub-class `ClassLabel`), ``main_label`` (main-class `ClassLabel`) and ``path``
    (relative to the dataset root, the key of split.json). Without `split_file` there is a single
    "train" split; with it, one split per name the manifest uses.

    Pass a previous `scan` to reuse it. Otherwise the folder is scanned; `check_images=None` decodes
    a thumbnail of every file only without `split_file`: a manifest lists the files that a checked
    scan found usable when the split was made, so re-checking 130k files per training run is skipped.
    """
    import datasets

    if scan is None:
        check = split_file is None if check_images is None else check_images
        scan = scan_folder(root, taxonomy, check_images=check, num_workers=num_workers, progress=progress)
    else:
        given = Path(root).expanduser().resolve()
        if given not in (scan.root, scan.input_dir):
            raise DatasetLayoutError(
                f"The scan passed to load_image_folder is of {scan.root}, not of {given}; "
                "pass the scan of the same folder, or no scan."
            )
        if scan.taxonomy != taxonomy:
            raise TaxonomyError(
                f"The scan used taxonomy {scan.taxonomy.name!r} but {taxonomy.name!r} was passed; "
                "scan and load with the same taxonomy."
            )
    for w in scan.warnings:
        logger.warning("%s: %s", scan.root, w)
    if scan.bad_files:
        logger.warning(
            "%s: %d unusable files skipped (run `cancernet data validate` for the list)",
            scan.root,
            len(scan.bad_files),
        )
    if not scan.files:
        raise DatasetLayoutError(
            f"Dataset folder {scan.root} has no usable image ({len(scan.bad_files)} unusable files). "
            "Run `cancernet data validate` on it to see why."
        )
    features = dataset_features(taxonomy)
    if split_file is None:
        return datasets.DatasetDict({"train": _build_dataset(scan, scan.files, features)})

    assignment = read_split_assignment(split_file)
    on_disk = {f.path: f for f in scan.files}
    missing = [p for p in assignment if p not in on_disk]
    unassigned = [p for p in on_disk if p not in assignment]
    if len(missing) == len(assignment):
        raise SplitError(
            f"None of the {len(assignment):,} files in split manifest {split_file} is a usable image under "
            f"{scan.root} (e.g. {next(iter(assignment), '?')!r}). The manifest was made for another "
            "folder or layout: run `cancernet data split` on this folder."
        )
    if missing:
        logger.warning(
            "%d files of split manifest %s are missing or unusable under %s and are skipped (e.g. %s)",
            len(missing),
            split_file,
            scan.root,
            missing[0],
        )
    if unassigned:
        logger.warning(
            "%d usable images under %s are not in split manifest %s and are ignored (e.g. %s)",
            len(unassigned),
            scan.root,
            split_file,
            unassigned[0],
        )
    names = set(assignment.values())
    ordered = [s for s in SPLITS if s in names] + sorted(names - set(SPLITS))
    by_split: dict[str, list[ImageRecord]] = {s: [] for s in ordered}
    for path, record in on_disk.items():
        split = assignment.get(path)
        if split is not None:
            by_split[split].append(record)
    return datasets.DatasetDict({s: _build_dataset(scan, recs, features) for s, recs in by_split.items()})


def read_split_assignment(split_file: str | Path) -> dict[str, str]:
    """Relative path -> split name from a split manifest (validated by `SplitManifest.load`)."""
    from .splits import SplitManifest

    return {str(p): v["split"] for p, v in SplitManifest.load(split_file).files.items()}


# ---- layout ----------------------------------------------------------------------------------
def _is_ignored(name: str, *, is_dir: bool) -> bool:
    if name.startswith("."):
        return True
    return name.casefold() in (_IGNORED_DIRS if is_dir else _IGNORED_FILES)


def _visible(folder: Path) -> tuple[list[Path], list[Path]]:
    """(sub-folders, files) of `folder`, hidden entries and OS litter left out, sorted by name."""
    dirs, files = [], []
    with os.scandir(folder) as entries:
        for entry in entries:
            is_dir = entry.is_dir()
            if _is_ignored(entry.name, is_dir=is_dir):
                continue
            (dirs if is_dir else files).append(Path(entry.path))
    return sorted(dirs), sorted(files)


def _expected(taxonomy: Taxonomy) -> str:
    return (
        f"expected main-class folders {taxonomy.main_names} each holding its sub-class folders, "
        f"or sub-class folders {taxonomy.sub_names}"
    )


def _unknown_list(names: Iterable[str], choices: list[str]) -> str:
    return "; ".join(f"{n!r}{did_you_mean(n, choices)}" for n in names)


def _find_class_folders(
    input_dir: Path, taxonomy: Taxonomy
) -> tuple[Path, str, list[tuple[Path, str]], list[str]]:
    """(dataset root, layout, [(class folder, canonical name)], stray files) below `input_dir`."""
    folder = input_dir
    stray: list[str] = []
    for _ in range(MAX_WRAPPER_LEVELS + 1):
        dirs, files = _visible(folder)
        resolved = [(d, taxonomy.resolve_folder(d.name)) for d in dirs]
        known = [(d, name) for d, name in resolved if name is not None]
        if known:
            stray += [f.relative_to(input_dir).as_posix() for f in files]
            unknown = [d.name for d, name in resolved if name is None]
            if unknown:
                raise DatasetLayoutError(
                    f"Unknown folders in {folder}: {_unknown_list(unknown, taxonomy.main_names + taxonomy.sub_names)}. "
                    f"They match no class of taxonomy {taxonomy.name!r}; {_expected(taxonomy)}. Rename or move "
                    "them, or pass --taxonomy FILE.json for another dataset."
                )
            mains = [name for _, name in known if name in taxonomy.main_classes]
            if mains and len(mains) != len(known):
                subs = [name for _, name in known if name not in taxonomy.main_classes]
                raise DatasetLayoutError(
                    f"{folder} mixes main-class folders {mains} with sub-class folders {subs}; put each "
                    "sub-class folder inside its main-class folder, or use only sub-class folders (flat)."
                )
            return folder, (LAYOUT_MAIN_SUB if mains else LAYOUT_SUB), known, stray
        if len(dirs) == 1:  # a wrapper folder, e.g. 'Multi Cancer/Multi Cancer/...'
            stray += [f.relative_to(input_dir).as_posix() for f in files]
            folder = dirs[0]
            continue
        break
    found = [d.name for d in _visible(folder)[0]]
    listed = (
        f" (unknown folders: {_unknown_list(found, taxonomy.main_names + taxonomy.sub_names)})"
        if found
        else ""
    )
    raise DatasetLayoutError(
        f"No class folders found in {folder}{listed}; {_expected(taxonomy)}. Point the command at the folder "
        "that holds them (or at a folder wrapping it), or pass --taxonomy FILE.json for another dataset."
    )


def _list_files(
    input_dir: Path, root: Path, layout: str, class_dirs: list[tuple[Path, str]], taxonomy: Taxonomy
) -> tuple[list[ImageRecord], list[BadFile], list[str]]:
    """Candidate images per sub-class folder; non-image extensions and zero-byte files are bad."""
    sub_dirs: list[tuple[Path, str]] = []
    stray: list[str] = []
    problems: list[str] = []
    if layout == LAYOUT_SUB:
        sub_dirs = class_dirs
    else:
        for main_dir, main in class_dirs:
            dirs, files = _visible(main_dir)
            stray += [f.relative_to(input_dir).as_posix() for f in files]
            own_subs = [s for s in taxonomy.sub_names if taxonomy.main_of(s) == main]
            for d in dirs:
                sub = taxonomy.resolve_folder(d.name)
                if sub is None or sub in taxonomy.main_classes:
                    problems.append(
                        f"unknown folder {d.relative_to(root).as_posix()!r}{did_you_mean(d.name, own_subs)} "
                        f"(expected one of {own_subs})"
                    )
                elif taxonomy.main_of(sub) != main:
                    problems.append(
                        f"sub-class folder {d.relative_to(root).as_posix()!r} belongs to main class "
                        f"{taxonomy.main_of(sub)!r}, not {main!r}"
                    )
                else:
                    sub_dirs.append((d, sub))
    if problems:
        raise DatasetLayoutError(
            f"Dataset folder {root} has misplaced or unknown sub-class folders: {'; '.join(problems)}. "
            "Move or rename them (or pass --taxonomy FILE.json for another dataset)."
        )

    records: list[ImageRecord] = []
    bad: list[BadFile] = []
    for sub_dir, sub in sub_dirs:
        main = taxonomy.main_of(sub)
        for folder, dirnames, filenames in os.walk(sub_dir):
            dirnames[:] = sorted(d for d in dirnames if not _is_ignored(d, is_dir=True))
            for name in sorted(filenames):
                if _is_ignored(name, is_dir=False):
                    continue
                full = Path(folder) / name
                rel = full.relative_to(root).as_posix()
                if full.suffix.lower() not in IMAGE_EXTENSIONS:
                    bad.append(
                        BadFile(rel, NOT_AN_IMAGE, f"extension {full.suffix or '(none)'!r} is not an image")
                    )
                    continue
                try:
                    size = full.stat().st_size
                except OSError as e:
                    bad.append(BadFile(rel, UNREADABLE, f"{type(e).__name__}: {e}"))
                    continue
                if size == 0:
                    bad.append(BadFile(rel, ZERO_BYTE, "file has 0 bytes"))
                    continue
                records.append(ImageRecord(rel, sub, main))
    return records, bad, stray


# ---- checking --------------------------------------------------------------------------------
CheckResult = tuple  # (True, width, height, mode, format) or (False, reason, detail)


def _check_one(path: str) -> CheckResult:
    """Worker: never raises, so one bad file cannot stop a 130k-file scan."""
    try:
        info = inspect_image(path)
    except BadImageError as e:
        return (False, getattr(e, "reason", UNREADABLE), getattr(e, "detail", str(e)))
    except Exception as e:  # vanished file, I/O error, a PIL bug on a hostile file
        return (False, UNREADABLE, f"{type(e).__name__}: {e}")
    return (True, info.width, info.height, info.mode, info.format)


def _check_files(paths: list[Path], num_workers: int | None, progress: bool) -> list[CheckResult]:
    workers = max(1, num_workers if num_workers is not None else (os.cpu_count() or 1))
    workers = min(workers, max(1, len(paths) // _MIN_FILES_PER_WORKER))
    items = [str(p) for p in paths]
    bar = tqdm(total=len(items), desc="Checking images", unit="img", disable=not progress)
    try:
        if workers == 1:
            results = []
            for item in items:
                results.append(_check_one(item))
                bar.update()
            return results
        chunksize = max(1, min(256, len(items) // (workers * 8)))
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = []
            for result in pool.map(_check_one, items, chunksize=chunksize):
                results.append(result)
                bar.update()
            return results
    finally:
        bar.close()


def _top(counter: dict[str, int], n: int = 5) -> str:
    items = list(counter.items())
    shown = ", ".join(f"{k} ({v:,})" for k, v in items[:n])
    return shown + (f", ... {len(items) - n} more" if len(items) > n else "")


def _build_dataset(
    scan: ScanReport, records: list[ImageRecord], features: datasets.Features
) -> datasets.Dataset:
    import datasets

    taxonomy = scan.taxonomy
    sub_index = taxonomy.label2id
    main_index = {m: i for i, m in enumerate(taxonomy.main_names)}
    return datasets.Dataset.from_dict(
        {
            "image": [str(scan.root / r.path) for r in records],
            "label": [sub_index[r.sub] for r in records],
            "main_label": [main_index[r.main] for r in records],
            "path": [r.path for r in records],
        },
        features=features,
    )
