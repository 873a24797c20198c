"""scan_folder + load_image_folder on hand-made folders: layouts, labels, bad files, errors, splits."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from PIL import Image

from cancernet_hf.data import folder as folder_module
from cancernet_hf.data.folder import LAYOUT_MAIN_SUB, LAYOUT_SUB, load_image_folder, scan_folder
from cancernet_hf.data.images import to_rgb
from cancernet_hf.errors import DatasetLayoutError, SplitError
from cancernet_hf.taxonomy import MULTI_CANCER, Taxonomy

TAX = MULTI_CANCER


def _scan(path, **kw):
    return scan_folder(path, num_workers=1, progress=False, **kw)


def _expected_paths(imgs, *, flat: bool = False) -> dict[str, str]:
    """relative path -> sub-class, as build_tree writes them."""
    out = {}
    for main, subs in imgs.hand_made.items():
        for sub in subs:
            for i in range(imgs.per_sub):
                out[f"{sub}/{sub}_{i}.jpg" if flat else f"{main}/{sub}/{sub}_{i}.jpg"] = sub
    return out


# ---- layouts and labels ----------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["nested", "doubly-nested", "flat"])
def test_layouts_load_with_right_labels_at_both_levels(tmp_path, imgs, variant):
    base = tmp_path / "Multi Cancer"
    imgs.build_tree(
        base, wrapper="Multi Cancer" if variant == "doubly-nested" else None, flat=variant == "flat"
    )
    scan = _scan(base)
    expected = _expected_paths(imgs, flat=variant == "flat")
    assert scan.layout == (LAYOUT_SUB if variant == "flat" else LAYOUT_MAIN_SUB)
    assert scan.root == (base / "Multi Cancer" if variant == "doubly-nested" else base).resolve()
    assert scan.wrapper == ("Multi Cancer" if variant == "doubly-nested" else None)
    assert {f.path: f.sub for f in scan.files} == expected
    assert scan.bad_files == [] and scan.usable
    assert scan.counts_sub["colon_aca"] == imgs.per_sub and scan.counts_sub["lung_aca"] == 0
    assert scan.counts_main == {
        m: imgs.per_sub * len(imgs.hand_made.get(m, [])) for m in TAX.main_names
    }  # zero for absent mains
    assert scan.sizes == {"32x32": len(expected)} and scan.modes == {"RGB": len(expected)}

    ds = load_image_folder(base, scan=scan)
    assert list(ds) == ["train"]
    train = ds["train"]
    assert train.features["label"].names == TAX.sub_names
    assert train.features["main_label"].names == TAX.main_names
    assert len(train) == len(expected)
    for row in train:
        sub = expected[row["path"]]
        assert train.features["label"].int2str(row["label"]) == sub
        assert train.features["main_label"].int2str(row["main_label"]) == TAX.main_of(sub)
        assert row["image"].size == (32, 32)
        assert (scan.root / row["path"]).is_file()


def test_load_without_scan_scans_itself_and_aliases_resolve(tmp_path, imgs):
    base = tmp_path / "d"
    imgs.write(base / "all" / "ALL_BENIGN" / "a.jpg", fmt="JPEG")  # case differs from the taxonomy
    imgs.write(base / "Lung-and-Colon-Cancer" / "Lung_Scc" / "b.png")
    ds = load_image_folder(base)["train"]
    names = {r["path"]: (ds.features["label"].int2str(r["label"]), r["main_label"]) for r in ds}
    assert names == {
        "Lung-and-Colon-Cancer/Lung_Scc/b.png": ("lung_scc", TAX.main_names.index("Lung and Colon Cancer")),
        "all/ALL_BENIGN/a.jpg": ("all_benign", TAX.main_names.index("ALL")),
    }


def test_hidden_files_and_os_litter_are_ignored_silently(tmp_path, imgs, caplog):
    base = imgs.build_tree(tmp_path / "d")
    for folder in (base, base / "ALL", base / "ALL" / "all_benign"):
        imgs.add_litter(folder)
    with caplog.at_level(logging.WARNING):
        scan = _scan(base)
    assert len(scan.files) == len(_expected_paths(imgs))
    assert scan.bad_files == [] and scan.stray_files == []
    assert "litter" not in caplog.text and ".DS_Store" not in caplog.text


def test_stray_files_beside_class_folders_are_ignored_with_a_warning(tmp_path, imgs):
    base = imgs.build_tree(tmp_path / "d", wrapper="Multi Cancer")
    (base / "README.txt").write_text("downloaded from kaggle")
    imgs.write(base / "Multi Cancer" / "ALL" / "loose.jpg", fmt="JPEG")
    scan = _scan(base)
    assert scan.stray_files == ["Multi Cancer/ALL/loose.jpg", "README.txt"]
    assert len(scan.files) == len(_expected_paths(imgs))
    assert any("2 files lie outside" in w for w in scan.warnings)


def test_nested_folders_inside_a_sub_class_are_included(tmp_path, imgs):
    base = imgs.build_tree(tmp_path / "d")
    imgs.write(base / "ALL" / "all_benign" / "batch2" / "x.jpg", fmt="JPEG")
    scan = _scan(base)
    assert "ALL/all_benign/batch2/x.jpg" in {f.path for f in scan.files}
    assert scan.counts_sub["all_benign"] == imgs.per_sub + 1


# ---- bad files -------------------------------------------------------------------------------
def test_every_bad_file_is_reported_with_its_reason_and_skipped(tmp_path, imgs):
    base = imgs.build_tree(tmp_path / "d")
    bad_dir = base / "ALL" / "all_early"
    for name, (write, _) in imgs.bad_files.items():
        write(bad_dir / name)
    scan = _scan(base)
    reported = {b.path.rsplit("/", 1)[-1]: b.reason for b in scan.bad_files}
    assert reported == {name: reason for name, (_, reason) in imgs.bad_files.items()}
    assert all(b.detail for b in scan.bad_files)
    assert len(scan.files) == len(_expected_paths(imgs))  # the good ones are all there
    assert scan.usable and scan.counts_sub["all_early"] == imgs.per_sub
    assert scan.bad_by_reason["absurd dimensions"] == 3

    ds = load_image_folder(base, scan=scan)["train"]
    assert len(ds) == len(_expected_paths(imgs))
    assert not any(p.startswith("ALL/all_early/") and "all_early_" not in p for p in ds["path"])
    for image in ds["image"]:  # every kept row decodes
        assert image.size == (32, 32)

    text = scan.summary()
    assert "9 unusable (skipped)" in text and "truncated.jpg: truncated or corrupt" in text
    assert "Status: USABLE" in text

    saved = json.loads(scan.save(tmp_path / "r" / "scan.json").read_text())
    assert saved["num_bad"] == 9 and saved["usable"] is True
    assert {b["reason"] for b in saved["bad_files"]} == {r for _, r in imgs.bad_files.values()}
    assert saved["counts_sub"]["all_early"] == imgs.per_sub and "files" not in saved


def test_without_image_checks_only_cheap_problems_are_found(tmp_path, imgs):
    base = imgs.build_tree(tmp_path / "d")
    for name in ("zero.jpg", "notes.txt", "truncated.jpg"):
        imgs.bad_files[name][0](base / "ALL" / "all_benign" / name)
    scan = _scan(base, check_images=False)
    assert {b.reason for b in scan.bad_files} == {"zero-byte", "not an image"}
    assert "ALL/all_benign/truncated.jpg" in {f.path for f in scan.files}
    assert not scan.checked_images and scan.sizes == {}


def test_usable_needs_two_classes_with_usable_images(tmp_path, imgs):
    base = tmp_path / "d"
    imgs.write(base / "ALL" / "all_benign" / "a.jpg", fmt="JPEG")
    (base / "ALL" / "all_early").mkdir()
    (base / "ALL" / "all_early" / "z.jpg").write_bytes(b"")
    scan = _scan(base)
    assert not scan.usable
    assert "NOT USABLE" in scan.summary()
    assert any("25 sub-classes have no usable image" in w for w in scan.warnings)
    imgs.write(base / "ALL" / "all_early" / "b.jpg", fmt="JPEG")
    assert _scan(base).usable


def test_no_usable_image_cannot_be_loaded(tmp_path):
    base = tmp_path / "d"
    (base / "ALL" / "all_benign").mkdir(parents=True)
    (base / "ALL" / "all_benign" / "z.jpg").write_bytes(b"")
    with pytest.raises(DatasetLayoutError, match="no usable image"):
        load_image_folder(base)


@pytest.mark.slow
def test_parallel_check_matches_sequential(tmp_path, imgs, monkeypatch):
    base = imgs.build_tree(tmp_path / "d")
    for name, (write, _) in imgs.bad_files.items():
        write(base / "Brain Cancer" / "brain_glioma" / name)
    sequential = _scan(base)
    monkeypatch.setattr(folder_module, "_MIN_FILES_PER_WORKER", 1)  # force the process pool on 18 files
    parallel = scan_folder(base, num_workers=2, progress=True)
    assert parallel.files == sequential.files
    assert parallel.bad_files == sequential.bad_files
    assert parallel.sizes == sequential.sizes


# ---- layout errors ---------------------------------------------------------------------------
def test_unknown_folders_fail_listing_them_and_the_expected_names(tmp_path, imgs):
    base = imgs.build_tree(tmp_path / "d")
    imgs.write(base / "Brain Cancr" / "brain_glioma" / "x.jpg")
    imgs.write(base / "misc" / "x.jpg")
    with pytest.raises(DatasetLayoutError) as err:
        _scan(base)
    msg = str(err.value)
    assert "'Brain Cancr' Did you mean 'Brain Cancer'?" in msg and "'misc'" in msg
    assert "Oral Cancer" in msg and "lymph_mcl" in msg  # the expected names are listed
    assert "--taxonomy" in msg


def test_unknown_or_misplaced_sub_folders_fail(tmp_path, imgs):
    base = imgs.build_tree(tmp_path / "d")
    imgs.write(base / "ALL" / "lung_aca" / "x.jpg")
    imgs.write(base / "ALL" / "all_bening" / "x.jpg")
    with pytest.raises(DatasetLayoutError) as err:
        _scan(base)
    msg = str(err.value)
    assert "'ALL/lung_aca' belongs to main class 'Lung and Colon Cancer', not 'ALL'" in msg
    assert "'ALL/all_bening' Did you mean 'all_benign'?" in msg


def test_mixed_main_and_sub_folders_fail(tmp_path, imgs):
    base = imgs.build_tree(tmp_path / "d")
    imgs.write(base / "oral_scc" / "x.jpg")
    with pytest.raises(DatasetLayoutError, match="mixes main-class folders"):
        _scan(base)


def test_no_class_folder_or_missing_folder(tmp_path, imgs):
    imgs.write(tmp_path / "pics" / "a.jpg")
    with pytest.raises(DatasetLayoutError, match="No class folders found"):
        _scan(tmp_path / "pics")
    imgs.write(tmp_path / "two" / "x" / "a.jpg")
    imgs.write(tmp_path / "two" / "y" / "a.jpg")
    with pytest.raises(DatasetLayoutError, match=r"unknown folders: 'x'; 'y'"):
        _scan(tmp_path / "two")
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        _scan(tmp_path / "nowhere")


def test_custom_taxonomy_admits_another_dataset(tmp_path, imgs):
    tax = Taxonomy.from_dict(
        {
            "name": "skin",
            "main_classes": ["Skin"],
            "sub_classes": [{"name": "nevus", "main": "Skin"}, {"name": "melanoma", "main": "Skin"}],
        }
    )
    imgs.write(tmp_path / "s" / "Skin" / "nevus" / "a.jpg")
    imgs.write(tmp_path / "s" / "Skin" / "melanoma" / "b.jpg")
    with pytest.raises(DatasetLayoutError):
        _scan(tmp_path / "s")  # unknown to Multi Cancer
    ds = load_image_folder(tmp_path / "s", tax)["train"]
    assert ds.features["label"].names == ["nevus", "melanoma"]
    assert sorted(zip(ds["path"], ds["label"])) == [("Skin/melanoma/b.jpg", 1), ("Skin/nevus/a.jpg", 0)]


# ---- modes through datasets ------------------------------------------------------------------
def test_odd_modes_load_and_become_rgb_through_to_rgb(tmp_path, imgs):
    base = tmp_path / "d"
    ramp = np.tile(np.linspace(0, 4095, 64).astype(np.uint16), (32, 1))
    (base / "Brain Cancer" / "brain_glioma").mkdir(parents=True)
    Image.fromarray(ramp).save(base / "Brain Cancer" / "brain_glioma" / "mri16.png")
    imgs.write(base / "ALL" / "all_benign" / "gray.png", mode="L")
    Image.new("RGBA", (32, 32), (0, 0, 255, 0)).save(base / "ALL" / "all_benign" / "clear.png")
    imgs.write(base / "ALL" / "all_benign" / "cmyk.jpg", mode="CMYK", fmt="JPEG")
    scan = _scan(base)
    assert scan.bad_files == []
    assert set(scan.modes) == {"I;16", "L", "RGBA", "CMYK"}
    ds = load_image_folder(base, scan=scan)["train"]
    by_path = {r["path"]: r["image"] for r in ds}
    for path, image in by_path.items():
        rgb = to_rgb(image)
        assert rgb.mode == "RGB" and rgb.size == image.size, path
    mri = np.asarray(to_rgb(by_path["Brain Cancer/brain_glioma/mri16.png"]))
    assert mri[0, 0, 0] == 0 and mri[0, -1, 0] == 255 and (mri == 255).mean() < 0.05
    assert to_rgb(by_path["ALL/all_benign/clear.png"]).getpixel((0, 0)) == (255, 255, 255)


# ---- split manifests -------------------------------------------------------------------------
def _write_manifest(path, files: dict[str, str]) -> None:
    path.write_text(
        json.dumps(
            {
                "protocol": "random",
                "seed": 0,
                "fractions": [0.5, 0.25, 0.25],
                "threshold": 0,
                "files": {p: {"split": s, "group": i} for i, (p, s) in enumerate(files.items())},
                "summary": {},
            }
        )
    )


def test_split_file_gives_the_manifest_splits_and_warns_on_mismatches(tmp_path, imgs, caplog):
    base = imgs.build_tree(tmp_path / "d")
    paths = sorted(_expected_paths(imgs))
    assignment = {
        p: ("train", "validation", "test")[i % 3] for i, p in enumerate(paths[:-1])
    }  # last one unlisted
    assignment["ALL/all_benign/gone.jpg"] = "train"  # in the manifest, not on disk
    split_file = tmp_path / "split.json"
    _write_manifest(split_file, assignment)
    with caplog.at_level(logging.WARNING):
        ds = load_image_folder(base, split_file=split_file)
    assert list(ds) == ["train", "validation", "test"]
    for name, split in ds.items():
        assert sorted(split["path"]) == sorted(p for p, s in assignment.items() if s == name and p in paths)
    assert sum(len(s) for s in ds.values()) == len(paths) - 1
    assert "1 files of split manifest" in caplog.text and "missing or unusable" in caplog.text
    assert "1 usable images" in caplog.text and "not in split manifest" in caplog.text


def test_split_file_of_another_folder_is_refused(tmp_path, imgs):
    base = imgs.build_tree(tmp_path / "d")
    split_file = tmp_path / "split.json"
    _write_manifest(split_file, {"Other/x.jpg": "train", "Other/y.jpg": "test"})
    with pytest.raises(SplitError):
        load_image_folder(base, split_file=split_file)
    with pytest.raises(SplitError):
        load_image_folder(base, split_file=tmp_path / "missing.json")


def test_scan_of_another_folder_is_refused(tmp_path, imgs):
    a = imgs.build_tree(tmp_path / "a")
    b = imgs.build_tree(tmp_path / "b")
    with pytest.raises(DatasetLayoutError, match="pass the scan of the same folder"):
        load_image_folder(b, scan=_scan(a))


def test_with_a_split_file_images_are_trusted_unless_checking_is_asked(tmp_path, imgs, caplog):
    base = imgs.build_tree(tmp_path / "d")
    broken = base / "ALL" / "all_benign" / "later_broken.jpg"
    imgs.bad_files["truncated.jpg"][0](broken)  # e.g. corrupted after the split was made
    paths = sorted(_expected_paths(imgs)) + ["ALL/all_benign/later_broken.jpg"]
    split_file = tmp_path / "split.json"
    _write_manifest(split_file, {p: ("train", "test")[i % 2] for i, p in enumerate(paths)})
    trusted = load_image_folder(base, split_file=split_file, progress=False)
    assert sum(len(d) for d in trusted.values()) == len(paths)
    with caplog.at_level(logging.WARNING):
        checked = load_image_folder(base, split_file=split_file, check_images=True, progress=False)
    assert sum(len(d) for d in checked.values()) == len(paths) - 1
    assert not any("later_broken" in p for d in checked.values() for p in d["path"])
    assert "1 files of split manifest" in caplog.text
