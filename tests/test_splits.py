"""Leakage-aware split: dihedral-invariant hashing, grouping of planted copies, stratification, the
random protocol's leak, the manifest round trip and the hash cache."""

from __future__ import annotations

import io
import json
import os
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from cancernet_hf import MULTI_CANCER
from cancernet_hf.constants import SPLITS
from cancernet_hf.data import phash
from cancernet_hf.data.folder import scan_folder
from cancernet_hf.data.splits import (
    DEFAULT_THRESHOLD,
    SplitManifest,
    assign_groups,
    dihedral_distance,
    dihedral_hashes,
    make_split,
    perceptual_hash,
)
from cancernet_hf.data.synthetic import generate_demo_dataset, render_image
from cancernet_hf.errors import SplitError

FRACTIONS = (0.8, 0.1, 0.1)
PER_CLASS = 20


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("cache")
        mp.setenv("CANCERNET_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def demo(tmp_path_factory, cache):
    out = tmp_path_factory.mktemp("split") / "demo"
    synth = generate_demo_dataset(out, per_class=PER_CLASS, size=64, seed=3, progress=False)
    scan = scan_folder(out, progress=False, num_workers=1)
    return synth, scan


@pytest.fixture(scope="module")
def group_split(demo):
    return make_split(demo[1], fractions=FRACTIONS, seed=0, num_workers=1, progress=False)


def _transforms(img: np.ndarray) -> list[np.ndarray]:
    rots = [np.rot90(img, k) for k in range(4)]
    return rots + [np.ascontiguousarray(r.transpose(1, 0, 2)) for r in rots]


def _jpeg(img: np.ndarray) -> Image.Image:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, "JPEG", quality=90)
    buf.seek(0)
    return Image.open(buf)


# ---- hashing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("sub", ["lymph_cll", "cervix_koc", "all_pro"])
def test_hash_is_invariant_to_the_8_dihedral_transforms(sub):
    img = render_image(sub, np.random.default_rng(1), 128)
    canonical = perceptual_hash(img)
    variants = sorted(dihedral_hashes(img).tolist())
    for t in _transforms(img):
        assert perceptual_hash(t) == canonical  # exact on pixels
        assert sorted(dihedral_hashes(t).tolist()) == variants
        assert dihedral_distance(dihedral_hashes(img), dihedral_hashes(_jpeg(t))) <= 4  # through JPEG
    # The grouping similarity links every transform (through JPEG) to the original.
    blocks = np.stack([phash.dct_block(img)] + [phash.dct_block(_jpeg(t)) for t in _transforms(img)])
    others = [phash.dct_block(render_image(sub, np.random.default_rng(s), 128)) for s in range(2, 12)]
    pairs = phash.near_duplicate_pairs(np.concatenate([blocks, others]), DEFAULT_THRESHOLD)
    linked = {int(j) for i, j in pairs if i == 0}
    assert linked == set(range(1, 9))  # all 8 transforms, none of the 10 distinct images


def test_hash_distinguishes_different_images():
    imgs = [render_image(s, np.random.default_rng(5), 96) for s in ("lymph_fl", "colon_bnt", "cervix_sfi")]
    imgs += [render_image("lymph_fl", np.random.default_rng(6), 96)]
    hashes = [dihedral_hashes(i) for i in imgs]
    for a in range(len(hashes)):
        for b in range(a + 1, len(hashes)):
            assert dihedral_distance(hashes[a], hashes[b]) > DEFAULT_THRESHOLD


def test_hashes_any_image_mode(tmp_path):
    arr = (np.random.default_rng(0).random((40, 40)) * 65535).astype(np.uint16)
    Image.fromarray(arr).save(tmp_path / "x16.png")
    Image.fromarray((arr // 257).astype(np.uint8)).save(tmp_path / "x8.png")
    # 16-bit is rescaled, not clipped: same hash as its 8-bit version.
    assert perceptual_hash(tmp_path / "x16.png") == perceptual_hash(tmp_path / "x8.png")


# ---- group split -----------------------------------------------------------------------------------


def test_group_split_keeps_planted_groups_together_and_is_stratified(demo, group_split):
    synth, scan = demo
    m = group_split
    assert len(m.files) == len(scan.files) == 26 * PER_CLASS
    for group in synth.planted_groups:
        assert len({m.split_of(p) for p in group}) == 1, group
        assert len({m.files[p]["group"] for p in group}) == 1, group
    m.check_no_leak()
    counts = Counter((v["sub"], v["split"]) for v in m.files.values())
    sizes = Counter(v["group"] for v in m.files.values())
    largest = max(sizes.values())
    for sub in MULTI_CANCER.sub_names:
        for split, frac in zip(SPLITS, FRACTIONS):
            assert counts[sub, split] >= 1, (sub, split)
            assert abs(counts[sub, split] - frac * PER_CLASS) <= largest, (sub, split, counts[sub, split])
    st = m.stats
    assert st["merged_groups"] >= len(synth.planted_groups)
    assert st["merged_images"] >= sum(len(g) for g in synth.planted_groups)
    assert st["leaking_groups"] == 0 and "no near-duplicate group crosses splits" in m.summary()
    assert sum(st["per_split"][s]["images"] for s in SPLITS) == len(m.files)
    assert m.synthetic and m.protocol == "group"
    n = len(synth.planted_groups)
    assert st["planted"] == {"groups": n, "found": n, "in_one_split": n}
    assert f"{n}/{n} inside one split" in m.summary()
    # Same seed, same manifest; another seed, another assignment.
    again = make_split(scan, fractions=FRACTIONS, seed=0, num_workers=1, progress=False)
    other = make_split(scan, fractions=FRACTIONS, seed=1, num_workers=1, progress=False)
    assert again.to_dict() == m.to_dict()
    assert other.files != m.files


def test_random_protocol_leaks_planted_copies(demo):
    synth, scan = demo
    m = make_split(scan, protocol="random", fractions=FRACTIONS, seed=0, num_workers=1, progress=False)
    crossing = [g for g in synth.planted_groups if len({m.split_of(p) for p in g}) > 1]
    assert crossing, "a random image split should put some copies on both sides"
    assert m.stats["leaking_groups"] >= len(crossing)
    with pytest.raises(SplitError, match="cross splits"):
        m.check_no_leak()
    assert "random protocol" in m.summary()
    assert m.stats["planted"]["in_one_split"] == len(synth.planted_groups) - len(crossing)
    counts = Counter((v["sub"], v["split"]) for v in m.files.values())
    assert all(counts[s, "train"] == 16 and counts[s, "test"] == 2 for s in MULTI_CANCER.sub_names)


def test_assign_groups_stratifies_small_classes():
    # 3 singletons of one class still reach every split; a 5-image group stays whole.
    where = assign_groups([0, 1, 2], ["a"] * 3, FRACTIONS, seed=0)
    assert sorted(where.tolist()) == [0, 1, 2]
    groups = [0] * 5 + list(range(1, 16))
    where = assign_groups(groups, ["b"] * 20, FRACTIONS, seed=0)
    assert len(set(where[:5].tolist())) == 1
    assert np.bincount(where, minlength=3).tolist() == [16, 2, 2]


def test_bad_arguments_are_explained(demo):
    scan = demo[1]
    with pytest.raises(SplitError, match="Did you mean 'random'"):
        make_split(scan, protocol="randon", progress=False)
    with pytest.raises(SplitError, match="sum to 1"):
        make_split(scan, fractions=(0.8, 0.3, 0.1), progress=False)
    with pytest.raises(SplitError, match="threshold"):
        make_split(scan, threshold=99, progress=False)


# ---- manifest ------------------------------------------------------------------------------------


def test_manifest_round_trip_and_errors(group_split, tmp_path):
    path = group_split.save(tmp_path / "split.json")
    loaded = SplitManifest.load(path)
    assert loaded.to_dict() == group_split.to_dict()
    data = json.loads(path.read_text())
    assert {"protocol", "seed", "fractions", "threshold", "files", "summary"} <= set(data)
    some = next(iter(data["files"].values()))
    assert set(some) >= {"split", "group"}
    assert sorted(loaded.paths("train") + loaded.paths("validation") + loaded.paths("test")) == sorted(
        data["files"]
    )

    with pytest.raises(SplitError, match="does not exist"):
        SplitManifest.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SplitError, match="not valid JSON"):
        SplitManifest.load(tmp_path / "bad.json")
    data["files"][next(iter(data["files"]))]["split"] = "holdout"
    (tmp_path / "wrong.json").write_text(json.dumps(data))
    with pytest.raises(SplitError, match="holdout"):
        SplitManifest.load(tmp_path / "wrong.json")
    with pytest.raises(SplitError, match="not in the split manifest"):
        loaded.split_of("nope.jpg")


# ---- cache ---------------------------------------------------------------------------------------


def test_second_run_is_served_from_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CANCERNET_CACHE", str(tmp_path / "cache"))
    synth = generate_demo_dataset(tmp_path / "d", per_class=3, size=32, seed=2, progress=False)
    scan = scan_folder(synth.root, progress=False, num_workers=1)
    calls = Counter()
    real = phash._hash_one

    def counting(path):
        calls[path] += 1
        return real(path)

    monkeypatch.setattr(phash, "_hash_one", counting)
    first = make_split(scan, num_workers=1, progress=False)
    assert sum(calls.values()) == len(scan.files)
    calls.clear()
    second = make_split(scan, num_workers=1, progress=False)
    assert sum(calls.values()) == 0 and second.files == first.files
    # A changed file (new size/mtime) is hashed again, alone.
    changed = synth.root / scan.files[0].path
    Image.open(changed).rotate(90).save(changed, quality=80)
    os.utime(changed, ns=(1, 1))
    make_split(scan, num_workers=1, progress=False)
    assert list(calls) == [str(changed)]
    # use_cache=False recomputes everything.
    calls.clear()
    make_split(scan, num_workers=1, use_cache=False, progress=False)
    assert sum(calls.values()) == len(scan.files)


@pytest.mark.slow
def test_parallel_hashing_matches_serial(demo, tmp_path):
    scan = demo[1]
    paths = [r.path for r in scan.files][:256]
    serial = phash.dct_blocks(scan.root, paths, num_workers=1, use_cache=False, progress=False)
    parallel = phash.dct_blocks(scan.root, paths, num_workers=2, use_cache=False, progress=False)
    np.testing.assert_array_equal(serial, parallel)
