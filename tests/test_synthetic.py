"""The demo dataset generator: real layout, determinism, planted copies, and classes that differ by
morphology/texture rather than by mean colour."""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pytest
from PIL import Image

from cancernet_hf import MULTI_CANCER
from cancernet_hf.constants import SYNTH_MANIFEST_FILE
from cancernet_hf.data.synthetic import (
    GENERATOR_VERSION,
    generate_demo_dataset,
    read_synth_manifest,
    render_image,
)
from cancernet_hf.errors import DatasetLayoutError


def _digest(root) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "demo"
    return generate_demo_dataset(out, per_class=6, size=48, seed=0, progress=False)


def test_full_layout_and_manifest(small):
    root = small.root
    mains = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert mains == sorted(MULTI_CANCER.main_names) and len(mains) == 8
    subs = sorted(p.name for p in root.glob("*/*") if p.is_dir())
    assert subs == sorted(MULTI_CANCER.sub_names) and len(subs) == 26
    for sub in MULTI_CANCER.sub_names:
        folder = root / MULTI_CANCER.main_of(sub) / sub
        files = sorted(folder.iterdir())
        assert len(files) == 6
        assert all(f.name.startswith(f"{sub}_") and f.suffix == ".jpg" for f in files)
        with Image.open(files[0]) as im:
            assert im.format == "JPEG" and im.size == (48, 48) and im.mode == "RGB"
    assert small.num_images == 26 * 6 == len(list(root.rglob("*.jpg")))

    manifest = json.loads((root / SYNTH_MANIFEST_FILE).read_text())
    assert manifest == read_synth_manifest(root)
    assert manifest["synthetic"] is True and manifest["version"] == GENERATOR_VERSION
    assert (manifest["seed"], manifest["per_class"], manifest["size"]) == (0, 6, 48)
    # Default: two planted groups per sub-class, each an original plus 1-4 copies in the same folder.
    assert manifest["planted_groups"] == small.planted_groups and len(small.planted_groups) == 52
    for group in small.planted_groups:
        assert 2 <= len(group) <= 5
        assert len({p.rsplit("/", 1)[0] for p in group}) == 1
        assert all((root / p).is_file() for p in group)
    # Copies of MRI/CT are never rotated or flipped (orientation is anatomical).
    for group, ops in zip(manifest["planted_groups"], manifest["planted_ops"]):
        dihedral = MULTI_CANCER.sub(group[0].split("/")[1]).dihedral
        assert all(("dihedral" in op) == dihedral for op in ops)
    assert "SYNTHETIC" in small.summary()


def test_scanner_accepts_it(small):
    from cancernet_hf.data.folder import scan_folder

    scan = scan_folder(small.root, progress=False, num_workers=1)
    assert not scan.bad_files and len(scan.files) == small.num_images
    assert set(scan.counts_sub.values()) == {6}


def test_deterministic_per_seed(tmp_path):
    a = generate_demo_dataset(
        tmp_path / "a", per_class=3, size=32, seed=7, duplicate_groups=5, progress=False
    )
    b = generate_demo_dataset(
        tmp_path / "b", per_class=3, size=32, seed=7, duplicate_groups=5, progress=False
    )
    c = generate_demo_dataset(
        tmp_path / "c", per_class=3, size=32, seed=8, duplicate_groups=5, progress=False
    )
    da, db, dc = _digest(a.root), _digest(b.root), _digest(c.root)
    assert da == db  # same seed: the same bytes, manifest included
    assert len(a.planted_groups) == 5
    assert set(da) - {SYNTH_MANIFEST_FILE} == set(dc) - {SYNTH_MANIFEST_FILE}
    changed = sum(da[k] != dc[k] for k in da)
    assert changed > 0.9 * len(da)


def test_regenerates_only_over_synthetic_data(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "notes.txt").write_text("my data")
    with pytest.raises(DatasetLayoutError, match="refusing to overwrite"):
        generate_demo_dataset(real, per_class=2, size=32, progress=False)
    out = tmp_path / "demo"
    generate_demo_dataset(out, per_class=3, size=32, seed=1, progress=False)
    again = generate_demo_dataset(out, per_class=2, size=32, seed=1, progress=False)
    assert len(list(out.rglob("*.jpg"))) == again.num_images == 52


def test_generation_time_small_set(tmp_path):
    start = time.process_time()
    result = generate_demo_dataset(tmp_path / "t", per_class=4, size=128, seed=0, progress=False)
    cpu = time.process_time() - start
    per_image = cpu / result.num_images
    print(f"generation: {per_image * 1000:.1f} ms CPU per 128px image ({result.num_images} images)")
    # ~15 ms measured; 1,300 images must stay well under a minute on one core.
    assert per_image < 0.04


def _texture_features(img: np.ndarray) -> np.ndarray:
    """Colour-free texture statistics: gradients at 3 scales, intensity quantiles, spectrum bands."""
    g = img.astype(np.float32).mean(axis=2)
    g = (g - g.mean()) / (g.std() + 1e-6)
    feats = []
    for k in (1, 2, 4):
        gg = g[::k, ::k]
        feats += [np.abs(np.diff(gg, axis=0)).mean(), np.abs(np.diff(gg, axis=1)).mean()]
    feats += list(np.percentile(g, [5, 25, 50, 75, 95]))
    spec = np.abs(np.fft.rfft2(g))
    fy = np.minimum(np.arange(spec.shape[0]), spec.shape[0] - np.arange(spec.shape[0]))[:, None]
    r = np.hypot(fy, np.arange(spec.shape[1])[None, :])
    feats += [np.log(spec[(r >= a) & (r < b)].mean() + 1e-6) for a, b in [(1, 3), (3, 6), (6, 12), (12, 24)]]
    return np.array(feats)


@pytest.mark.parametrize("main", ["Cervical Cancer", "Lymphoma"])
def test_classes_differ_by_texture_not_mean_colour(main):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    subs = [s for s in MULTI_CANCER.sub_names if MULTI_CANCER.main_of(s) == main]
    colour, texture, labels = [], [], []
    for sub in subs:
        ci = MULTI_CANCER.sub_index(sub)
        for j in range(20):
            img = render_image(sub, np.random.default_rng([11, ci, j]), 64)
            colour.append(img.reshape(-1, 3).mean(axis=0))
            texture.append(_texture_features(img))
            labels.append(sub)

    def accuracy(x) -> float:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        return float(cross_val_score(model, np.array(x), labels, cv=4).mean())

    by_colour, by_texture = accuracy(colour), accuracy(texture)
    print(f"{main}: chance {1 / len(subs):.2f}, mean-RGB {by_colour:.2f}, texture {by_texture:.2f}")
    assert by_colour < 0.6  # measured 0.29-0.44
    assert by_texture > by_colour + 0.3  # measured 0.87-0.95


def test_unknown_sub_class_is_refused_before_writing(tmp_path):
    from cancernet_hf.errors import TaxonomyError
    from cancernet_hf.taxonomy import Taxonomy

    data = MULTI_CANCER.to_dict()
    data["sub_classes"][0]["name"] = "all_mystery"
    custom = Taxonomy.from_dict(data)
    with pytest.raises(TaxonomyError, match="all_mystery"):
        generate_demo_dataset(tmp_path / "x", per_class=2, size=32, taxonomy=custom, progress=False)
    assert not (tmp_path / "x").exists()
