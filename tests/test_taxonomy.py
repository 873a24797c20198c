import json

import pytest

from cancernet_hf.errors import TaxonomyError
from cancernet_hf.taxonomy import MODALITIES, MULTI_CANCER, Taxonomy, load_taxonomy

EXPECTED_SUBS = (
    "all_benign all_early all_pre all_pro brain_glioma brain_menin brain_tumor breast_benign "
    "breast_malignant cervix_dyk cervix_koc cervix_mep cervix_pab cervix_sfi colon_aca colon_bnt "
    "kidney_normal kidney_tumor lung_aca lung_bnt lung_scc lymph_cll lymph_fl lymph_mcl oral_normal oral_scc"
).split()


def test_multi_cancer_has_8_main_and_26_sub_classes():
    assert MULTI_CANCER.main_names == [
        "ALL",
        "Brain Cancer",
        "Breast Cancer",
        "Cervical Cancer",
        "Kidney Cancer",
        "Lung and Colon Cancer",
        "Lymphoma",
        "Oral Cancer",
    ]
    assert MULTI_CANCER.sub_names == EXPECTED_SUBS
    assert len(MULTI_CANCER.sub_to_main) == 26
    assert sorted(set(MULTI_CANCER.sub_to_main)) == list(range(8))


def test_sub_classes_carry_main_modality_and_dihedral_rule():
    assert MULTI_CANCER.sub("brain_tumor").human_name == "Pituitary tumour"
    assert MULTI_CANCER.sub("cervix_sfi").human_name == "Superficial-intermediate cells"
    assert MULTI_CANCER.main_of("lung_scc") == "Lung and Colon Cancer"
    for s in MULTI_CANCER.sub_classes:
        assert s.modality in MODALITIES
        assert s.dihedral == (s.modality not in {"MRI", "CT"}), s.name
        assert s.name.split("_")[0] in {
            "all",
            "brain",
            "breast",
            "cervix",
            "colon",
            "kidney",
            "lung",
            "lymph",
            "oral",
        }


def test_label_maps_are_inverse():
    assert {v: k for k, v in MULTI_CANCER.id2label.items()} == MULTI_CANCER.label2id


def test_folder_names_resolve_tolerantly():
    assert MULTI_CANCER.resolve_folder("lung and colon cancer") == "Lung and Colon Cancer"
    assert MULTI_CANCER.resolve_folder("Lung_Colon_Cancer") == "Lung and Colon Cancer"
    assert MULTI_CANCER.resolve_folder("BRAIN_GLIOMA") == "brain_glioma"
    assert MULTI_CANCER.resolve_folder("skin_cancer") is None


def test_json_round_trip(tmp_path):
    path = MULTI_CANCER.save_json(tmp_path / "t.json")
    assert load_taxonomy(path) == MULTI_CANCER
    assert load_taxonomy(None) is MULTI_CANCER


def test_custom_taxonomy_from_json(tmp_path):
    path = tmp_path / "skin.json"
    path.write_text(
        json.dumps(
            {
                "name": "skin",
                "main_classes": ["Skin"],
                "sub_classes": [
                    {"name": "nevus", "main": "Skin"},
                    {"name": "melanoma", "main": "Skin", "dihedral": True},
                ],
            }
        )
    )
    tax = Taxonomy.from_json(path)
    assert tax.sub_names == ["nevus", "melanoma"] and tax.sub_to_main == (0, 0)
    assert tax.dihedral_mask == (False, True)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"main_classes": ["A"], "sub_classes": [{"name": "x", "main": "B"}]}, "not one of"),
        ({"main_classes": ["A", "B"], "sub_classes": [{"name": "x", "main": "A"}]}, "have no sub-class"),
        (
            {"main_classes": ["A"], "sub_classes": [{"name": "x", "main": "A"}, {"name": "x", "main": "A"}]},
            "repeats",
        ),
        ({"main_classes": ["A"]}, "sub_classes"),
    ],
)
def test_inconsistent_taxonomies_are_refused(data, message):
    with pytest.raises(TaxonomyError, match=message):
        Taxonomy.from_dict(data)


def test_unknown_sub_class_suggests_nearest():
    with pytest.raises(TaxonomyError, match="Did you mean 'lung_scc'"):
        MULTI_CANCER.sub("lung_sc")
