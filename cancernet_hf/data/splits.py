"""Leakage-aware train/validation/test split, written once as split.json and read by every later step.

The Multi Cancer images include augmented copies of each original (rot90/flips, zoom, brightness), so
a random image split puts copies of one original on both sides and inflates test accuracy. With
`protocol="group"` (the default) near-duplicates are grouped by a rotation/flip-invariant perceptual hash
(see `phash.py`) and whole groups go to one split, stratified by sub-class. Links are only made within a
sub-class: copies carry the label of their original, and a cross-class hash collision must not merge
classes. `protocol="random"` is a plain stratified image split; its manifest still records the
near-duplicate groups, so `check_no_leak()` shows how much it leaks.

    cancernet data split data/demo --out runs/demo/split.json
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..constants import DEMO_DATA_NOTICE, SPLIT_PROTOCOLS, SPLITS, SYNTH_MANIFEST_FILE
from ..errors import SplitError, did_you_mean
from .phash import (
    HASH_VERSION,
    dct_blocks,
    dihedral_distance,
    dihedral_hashes,
    group_near_duplicates,
    hamming,
    hash_file,
    perceptual_hash,
)

if TYPE_CHECKING:
    from .folder import ScanReport

logger = logging.getLogger(__name__)

# Angular bits (64*angle/pi between class-centred DCT coefficients, best rotation/flip) within which two
# images count as copies. Measured on the 1,300-image demo set: every planted copy (rot90/flip, zoom <= 4%,
# brightness +-10%) lies within 10 bits; 4% of the distinct images have a same-class neighbour that close
# (mostly MRI/CT slices, whose low frequencies are alike), which only merges more than needed - safe for
# leakage. Heavier Keras copies (zoom 8%, rotation +-5 degrees) lie at a median 8-17 bits: partly missed.
DEFAULT_THRESHOLD = 10
MANIFEST_VERSION = 1

__all__ = [
    "DEFAULT_THRESHOLD",
    "SplitManifest",
    "make_split",
    "assign_groups",
    "perceptual_hash",
    "dihedral_hashes",
    "dihedral_distance",
    "hamming",
    "hash_file",
]


@dataclass
class SplitManifest:
    """Which split each image belongs to, and its near-duplicate group (paths relative to the dataset root)."""

    protocol: str
    seed: int
    fractions: tuple[float, float, float]
    threshold: float
    files: dict[str, dict]  # relpath -> {"split": str, "group": int, "sub": str}
    stats: dict = field(default_factory=dict)
    taxonomy: str = "multi-cancer"
    root: str | None = None
    synthetic: bool = False
    hash_version: str = HASH_VERSION

    # ---- queries ----------------------------------------------------------------------------------
    def split_of(self, path: str) -> str:
        try:
            return self.files[path]["split"]
        except KeyError as e:
            raise SplitError(
                f"Image {path!r} is not in the split manifest ({len(self.files)} files). The dataset changed "
                "since the split was made; run `cancernet data split` again."
            ) from e

    def paths(self, split: str) -> list[str]:
        if split not in SPLITS:
            raise SplitError(
                f"Unknown split {split!r}; expected one of {list(SPLITS)}.{did_you_mean(split, SPLITS)}"
            )
        return [p for p, v in self.files.items() if v["split"] == split]

    def leaks(self) -> dict[int, list[str]]:
        """Groups whose images sit in more than one split: group id -> splits."""
        seen: dict[int, set[str]] = defaultdict(set)
        for v in self.files.values():
            seen[int(v["group"])].add(v["split"])
        return {g: sorted(s, key=SPLITS.index) for g, s in seen.items() if len(s) > 1}

    def check_no_leak(self) -> None:
        """Raise SplitError when any near-duplicate group crosses splits."""
        leaks = self.leaks()
        if leaks:
            sizes = Counter(int(v["group"]) for v in self.files.values())
            example = next(iter(leaks))
            paths = [p for p, v in self.files.items() if int(v["group"]) == example][:4]
            raise SplitError(
                f"{len(leaks)} near-duplicate groups ({sum(sizes[g] for g in leaks)} images) cross splits in this "
                f"{self.protocol!r} manifest, e.g. group {example} in {leaks[example]}: {paths}. Copies of one "
                "image on both sides inflate test scores; use `--protocol group`."
            )

    # ---- (de)serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "version": MANIFEST_VERSION,
            "protocol": self.protocol,
            "seed": self.seed,
            "fractions": list(self.fractions),
            "threshold": self.threshold,
            "hash": self.hash_version,
            "taxonomy": self.taxonomy,
            "root": self.root,
            "synthetic": self.synthetic,
            "notice": DEMO_DATA_NOTICE if self.synthetic else None,
            "summary": self.stats,
            "files": self.files,
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> SplitManifest:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise SplitError(
                f"Split manifest {path} does not exist; create it with `cancernet data split`."
            ) from e
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SplitError(
                f"Split manifest {path} is not valid JSON ({e}); write it again with `cancernet data split`."
            ) from e
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "<dict>") -> SplitManifest:
        fix = "write it again with `cancernet data split`."
        if not isinstance(data, dict):
            raise SplitError(f"Split manifest {source} holds {type(data).__name__}, not an object; {fix}")
        missing = [k for k in ("protocol", "seed", "fractions", "threshold", "files") if k not in data]
        if missing:
            raise SplitError(f"Split manifest {source} lacks the keys {missing}; {fix}")
        files = data["files"]
        if not isinstance(files, dict) or not files:
            raise SplitError(f"Split manifest {source} has no files; {fix}")
        for p, v in files.items():
            if not isinstance(v, dict) or v.get("split") not in SPLITS or not isinstance(v.get("group"), int):
                raise SplitError(
                    f"Split manifest {source}: entry {p!r} = {v!r} needs a 'split' in {list(SPLITS)} and an integer "
                    f"'group'; {fix}"
                )
        if not isinstance(data["threshold"], int | float):
            raise SplitError(
                f"Split manifest {source}: threshold {data['threshold']!r} is not a number; {fix}"
            )
        fractions = data["fractions"]
        if not (isinstance(fractions, list | tuple) and len(fractions) == len(SPLITS)):
            raise SplitError(
                f"Split manifest {source}: fractions {fractions!r} must list {len(SPLITS)} numbers; {fix}"
            )
        return cls(
            protocol=str(data["protocol"]),
            seed=int(data["seed"]),
            fractions=tuple(float(f) for f in fractions),
            threshold=data["threshold"],
            files=files,
            stats=dict(data.get("summary") or {}),
            taxonomy=str(data.get("taxonomy", "multi-cancer")),
            root=data.get("root"),
            synthetic=bool(data.get("synthetic", False)),
            hash_version=str(data.get("hash", HASH_VERSION)),
        )

    # ---- reporting ------------------------------------------------------------------------------
    def summary(self) -> str:
        st = self.stats or _stats(self.files, sorted({v.get("sub", "?") for v in self.files.values()}))
        fr = "/".join(f"{f:g}" for f in self.fractions)
        lines = [
            f"Split: {self.protocol} protocol, seed {self.seed}, fractions {fr} (train/validation/test), "
            f"near-duplicate threshold {self.threshold} bits",
            f"Images: {st['images']:,} in {st['groups']:,} groups; {st['merged_groups']:,} groups of near-duplicates "
            f"hold {st['merged_images']:,} images (largest group: {st['largest_group']}).",
        ]
        width = max([len(s) for s in st["per_class"]] + [10]) + 2
        lines.append(" " * (width + 2) + "".join(f"{s:>12}" for s in SPLITS))
        for sub, row in st["per_class"].items():
            lines.append(f"  {sub:<{width}}" + "".join(f"{row.get(s, 0):>12,}" for s in SPLITS))
        lines.append(
            f"  {'total':<{width}}" + "".join(f"{st['per_split'][s]['images']:>12,}" for s in SPLITS)
        )
        if st["leaking_groups"]:
            lines.append(
                f"Leak check: {st['leaking_groups']:,} near-duplicate groups ({st['leaking_images']:,} images) cross "
                "splits"
                + (
                    " - expected with the random protocol; report the group split as the headline."
                    if self.protocol == "random"
                    else "."
                )
            )
        else:
            lines.append("Leak check: OK, no near-duplicate group crosses splits.")
        planted = st.get("planted")
        if planted:
            lines.append(
                f"Planted copy groups (synthetic manifest): {planted['found']}/{planted['groups']} found by the hash, "
                f"{planted['in_one_split']}/{planted['groups']} inside one split."
            )
        if st.get("missing"):
            lines.append(f"Warning: classes absent from a split: {st['missing']}")
        if self.synthetic:
            lines.append(DEMO_DATA_NOTICE)
        return "\n".join(lines)


def _stats(files: dict[str, dict], subs: Sequence[str]) -> dict:
    per_class = {s: dict.fromkeys(SPLITS, 0) for s in subs}
    group_size: Counter[int] = Counter()
    group_splits: dict[int, set[str]] = defaultdict(set)
    for v in files.values():
        per_class.setdefault(v.get("sub", "?"), dict.fromkeys(SPLITS, 0))[v["split"]] += 1
        group_size[v["group"]] += 1
        group_splits[v["group"]].add(v["split"])
    leaking = [g for g, s in group_splits.items() if len(s) > 1]
    per_split = {
        s: {
            "images": sum(row[s] for row in per_class.values()),
            "groups": sum(1 for g in group_splits.values() if s in g),
        }
        for s in SPLITS
    }
    merged = [n for n in group_size.values() if n > 1]
    return {
        "images": len(files),
        "groups": len(group_size),
        "merged_groups": len(merged),
        "merged_images": int(sum(merged)),
        "largest_group": max(group_size.values(), default=0),
        "leaking_groups": len(leaking),
        "leaking_images": int(sum(group_size[g] for g in leaking)),
        "per_split": per_split,
        "per_class": per_class,
        "missing": {
            s: [c for c, row in per_class.items() if row[s] == 0 and sum(row.values())]
            for s in SPLITS
            if any(row[s] == 0 and sum(row.values()) for row in per_class.values())
        },
    }


# ==== assignment ======================================================================================


def assign_groups(
    groups: Sequence[int], classes: Sequence[str], fractions: Sequence[float], seed: int = 0
) -> np.ndarray:
    """Split index (into `fractions`) per image; every group lands in one split, stratified by class.

    Per class, groups are taken largest first (ties in seeded random order) and each goes to the split
    with the largest remaining deficit against its target count, which reproduces exact rounding for
    singleton groups. Afterwards a split left empty for a class takes the smallest group of the
    fullest split, when the class has enough groups. Requires each group to hold one class.
    """
    groups = np.asarray(groups)
    classes = np.asarray(classes)
    frac = np.asarray(fractions, np.float64)
    out = np.full(len(groups), -1, np.int64)
    active = np.flatnonzero(frac > 0)
    for ci, c in enumerate(sorted(set(classes.tolist()))):
        idx = np.flatnonzero(classes == c)
        gids, inverse, sizes = np.unique(groups[idx], return_inverse=True, return_counts=True)
        rng = np.random.default_rng([seed, ci])
        order = rng.permutation(len(gids))
        order = order[np.argsort(-sizes[order], kind="stable")]
        target = frac * len(idx)
        counts = np.zeros(len(frac))
        where = np.zeros(len(gids), np.int64)
        for g in order:
            deficit = (target - counts)[active]
            best = active[np.flatnonzero(deficit == deficit.max())]
            s = best[np.argmax(frac[best])]  # ties: the larger split
            where[g] = s
            counts[s] += sizes[g]
        # Every class in every split when it has enough groups.
        for s in active:
            if np.any(where == s) or len(gids) < len(active):
                continue
            per_split = np.bincount(where, minlength=len(frac))
            donor = max(
                (d for d in active if per_split[d] > 1), key=lambda d: counts[d] / frac[d], default=None
            )
            if donor is None:
                continue
            cand = np.flatnonzero(where == donor)
            g = cand[np.argmin(sizes[cand])]
            where[g] = s
            counts[donor] -= sizes[g]
            counts[s] += sizes[g]
        out[idx] = where[inverse]
    return out


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    fr = tuple(float(f) for f in fractions)
    if len(fr) != len(SPLITS) or any(f < 0 for f in fr) or abs(sum(fr) - 1.0) > 1e-3 or fr[0] <= 0:
        raise SplitError(
            f"Split fractions {list(fractions)} are invalid: give {len(SPLITS)} non-negative numbers for "
            f"{'/'.join(SPLITS)} that sum to 1 with train > 0, e.g. 0.8 0.1 0.1."
        )
    return fr  # type: ignore[return-value]


def make_split(
    scan: ScanReport,
    *,
    protocol: str = "group",
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    threshold: float = DEFAULT_THRESHOLD,
    num_workers: int | None = None,
    use_cache: bool = True,
    progress: bool = True,
) -> SplitManifest:
    """Split the usable images of `scan` into train/validation/test and return the manifest.

    `threshold` is the near-duplicate distance in bits of 64 (angle between the images' class-centred
    low-frequency DCT coefficients, best over the 8 rotations/flips, times 64/pi): 0 links only exact
    copies, the default 10 links light augmentations (see DEFAULT_THRESHOLD), larger merges more.

    Both protocols hash every image (cached per path/size/mtime) and record near-duplicate groups; with
    "group" whole groups are assigned, with "random" single images are (and the leak is reported).
    """
    if protocol not in SPLIT_PROTOCOLS:
        raise SplitError(
            f"Unknown split protocol {protocol!r}; expected one of {list(SPLIT_PROTOCOLS)}."
            f"{did_you_mean(protocol, SPLIT_PROTOCOLS)}"
        )
    fr = _check_fractions(fractions)
    if not 0 <= threshold <= 32:
        raise SplitError(
            f"Near-duplicate threshold {threshold} is out of range; use 0..32 bits (default {DEFAULT_THRESHOLD})."
        )
    records = sorted(scan.files, key=lambda r: r.path)
    if not records:
        raise SplitError(f"No usable images under {scan.root}; run `cancernet data validate` to see why.")
    paths = [r.path for r in records]
    subs = [r.sub for r in records]
    blocks = dct_blocks(scan.root, paths, num_workers=num_workers, use_cache=use_cache, progress=progress)
    groups = group_near_duplicates(blocks, subs, threshold)
    units = groups if protocol == "group" else np.arange(len(records))
    where = assign_groups(units, subs, fr, seed)
    files = {
        p: {"split": SPLITS[int(w)], "group": int(g), "sub": s}
        for p, w, g, s in zip(paths, where, groups, subs)
    }
    taxonomy = getattr(scan, "taxonomy", None)
    order = taxonomy.sub_names if taxonomy is not None else sorted(set(subs))
    manifest = SplitManifest(
        protocol=protocol,
        seed=int(seed),
        fractions=fr,
        threshold=threshold,
        files=files,
        stats=_stats(files, [s for s in order if s in set(subs)]),
        taxonomy=taxonomy.name if taxonomy is not None else "multi-cancer",
        root=str(scan.root),
        synthetic=(Path(scan.root) / SYNTH_MANIFEST_FILE).is_file(),
    )
    if manifest.synthetic:
        manifest.stats["planted"] = _planted_check(Path(scan.root), files)
    if protocol == "group":
        manifest.check_no_leak()
    st = manifest.stats
    logger.info(
        "%s split of %d images: %d groups, %d near-duplicate groups, %d leaking.",
        protocol,
        st["images"],
        st["groups"],
        st["merged_groups"],
        st["leaking_groups"],
    )
    return manifest


def _planted_check(root: Path, files: dict[str, dict]) -> dict:
    """On the synthetic demo data: how many planted copy groups were found and kept in one split."""
    try:
        planted = json.loads((root / SYNTH_MANIFEST_FILE).read_text(encoding="utf-8"))["planted_groups"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    groups = [[p for p in g if p in files] for g in planted]
    groups = [g for g in groups if len(g) > 1]
    return {
        "groups": len(groups),
        "found": sum(len({files[p]["group"] for p in g}) == 1 for g in groups),
        "in_one_split": sum(len({files[p]["split"] for p in g}) == 1 for g in groups),
    }


def read_split_protocol(split_file: str | Path) -> str | None:
    """The "protocol" ("group" or "random") a manifest was made with, without loading its file table."""
    path = Path(split_file)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise SplitError(
            f"Split manifest {path} does not exist; create it with `cancernet data split`."
        ) from e
    except (OSError, json.JSONDecodeError) as e:
        raise SplitError(
            f"Cannot read split manifest {path} ({e}); recreate it with `cancernet data split`."
        ) from e
    return manifest.get("protocol") if isinstance(manifest, dict) else None
