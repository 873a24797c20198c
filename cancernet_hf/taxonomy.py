"""The two-level label space: main classes (organ/disease) and sub-classes (what a model predicts).

A model predicts sub-classes only; the main class comes from the sub->main mapping, never from a
second model, so the two levels cannot disagree. Other datasets with the same two-level layout
bring their own taxonomy as JSON (`Taxonomy.from_json`).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

from .errors import TaxonomyError, did_you_mean

MODALITIES = ("blood smear", "MRI", "H&E histopathology", "Pap cytology", "CT")


@dataclass(frozen=True)
class SubClass:
    name: str
    main: str
    human_name: str
    modality: str
    # rot90/flip keep the label: true for microscopy, false for MRI/CT (anatomical orientation).
    dihedral: bool


@dataclass(frozen=True)
class Taxonomy:
    name: str
    main_classes: tuple[str, ...]
    sub_classes: tuple[SubClass, ...]
    # Where each main class's images come from (dataset cards and model cards cite it).
    sources: dict[str, str] = field(default_factory=dict)
    # Extra folder spellings seen in the wild -> canonical main or sub-class name.
    aliases: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        subs = [s.name for s in self.sub_classes]
        for names, what in ((list(self.main_classes), "main class"), (subs, "sub-class")):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise TaxonomyError(
                    f"Taxonomy {self.name!r} repeats {what} names {dupes}; names must be unique."
                )
        for s in self.sub_classes:
            if s.main not in self.main_classes:
                raise TaxonomyError(
                    f"Sub-class {s.name!r} names main class {s.main!r}, which is not one of "
                    f"{list(self.main_classes)}.{did_you_mean(s.main, self.main_classes)}"
                )
        empty = [m for m in self.main_classes if not any(s.main == m for s in self.sub_classes)]
        if empty:
            raise TaxonomyError(f"Main classes {empty} have no sub-class; give each at least one.")

    # ---- label spaces -------------------------------------------------------------------------
    @property
    def sub_names(self) -> list[str]:
        return [s.name for s in self.sub_classes]

    @property
    def main_names(self) -> list[str]:
        return list(self.main_classes)

    @property
    def num_sub(self) -> int:
        return len(self.sub_classes)

    @property
    def num_main(self) -> int:
        return len(self.main_classes)

    @cached_property
    def sub_to_main(self) -> tuple[int, ...]:
        """Main-class index of each sub-class index (sum probabilities with it)."""
        index = {m: i for i, m in enumerate(self.main_classes)}
        return tuple(index[s.main] for s in self.sub_classes)

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.sub_names))

    @property
    def label2id(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.sub_names)}

    @property
    def dihedral_mask(self) -> tuple[bool, ...]:
        return tuple(s.dihedral for s in self.sub_classes)

    def sub(self, name: str) -> SubClass:
        for s in self.sub_classes:
            if s.name == name:
                return s
        raise TaxonomyError(
            f"Unknown sub-class {name!r} in taxonomy {self.name!r}.{did_you_mean(name, self.sub_names)}"
        )

    def sub_index(self, name: str) -> int:
        return self.sub_names.index(self.sub(name).name)

    def main_of(self, sub_name: str) -> str:
        return self.sub(sub_name).main

    # ---- folder names -------------------------------------------------------------------------
    @cached_property
    def _folder_lookup(self) -> dict[str, str]:
        lookup = {_normalise(n): n for n in (*self.main_classes, *self.sub_names)}
        lookup.update({_normalise(a): c for a, c in self.aliases.items()})
        return lookup

    def resolve_folder(self, folder_name: str) -> str | None:
        """Canonical main or sub-class name for a folder name (case/underscore tolerant), else None."""
        return self._folder_lookup.get(_normalise(folder_name))

    # ---- (de)serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "main_classes": list(self.main_classes),
            "sub_classes": [asdict(s) for s in self.sub_classes],
            "sources": dict(self.sources),
            "aliases": dict(self.aliases),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Taxonomy:
        try:
            subs = tuple(
                SubClass(
                    name=s["name"],
                    main=s["main"],
                    human_name=s.get("human_name", s["name"]),
                    modality=s.get("modality", "unknown"),
                    dihedral=bool(s.get("dihedral", False)),
                )
                for s in data["sub_classes"]
            )
            return cls(
                name=data.get("name", "custom"),
                main_classes=tuple(data["main_classes"]),
                sub_classes=subs,
                sources=dict(data.get("sources", {})),
                aliases=dict(data.get("aliases", {})),
            )
        except (KeyError, TypeError) as e:
            raise TaxonomyError(
                f"Taxonomy data lacks or mistypes the field {e}; expected 'main_classes' (list of names) and "
                "'sub_classes' (list of objects with 'name' and 'main', optionally 'human_name', 'modality', "
                "'dihedral')."
            ) from e

    @classmethod
    def from_json(cls, path: str | Path) -> Taxonomy:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise TaxonomyError(f"Taxonomy file {path} does not exist.") from e
        except json.JSONDecodeError as e:
            raise TaxonomyError(f"Taxonomy file {path} is not valid JSON: {e}.") from e
        return cls.from_dict(data)

    def save_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path


def _normalise(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", name).strip().casefold()


def _subs(main: str, modality: str, dihedral: bool, *pairs: tuple[str, str]) -> list[SubClass]:
    return [SubClass(n, main, h, modality, dihedral) for n, h in pairs]


MULTI_CANCER = Taxonomy(
    name="multi-cancer",
    main_classes=(
        "ALL",
        "Brain Cancer",
        "Breast Cancer",
        "Cervical Cancer",
        "Kidney Cancer",
        "Lung and Colon Cancer",
        "Lymphoma",
        "Oral Cancer",
    ),
    # Alphabetical, as an image-folder loader orders the sub-class folders.
    sub_classes=tuple(
        sorted(
            _subs(
                "ALL",
                "blood smear",
                True,
                ("all_benign", "Benign (hematogones), no leukaemia"),
                ("all_early", "Early pre-B acute lymphoblastic leukaemia"),
                ("all_pre", "Pre-B acute lymphoblastic leukaemia"),
                ("all_pro", "Pro-B acute lymphoblastic leukaemia"),
            )
            + _subs(
                "Brain Cancer",
                "MRI",
                False,
                ("brain_glioma", "Glioma"),
                ("brain_menin", "Meningioma"),
                ("brain_tumor", "Pituitary tumour"),
            )
            + _subs(
                "Breast Cancer",
                "H&E histopathology",
                True,
                ("breast_benign", "Benign breast tumour"),
                ("breast_malignant", "Malignant breast tumour"),
            )
            + _subs(
                "Cervical Cancer",
                "Pap cytology",
                True,
                ("cervix_dyk", "Dyskeratotic cells"),
                ("cervix_koc", "Koilocytotic cells"),
                ("cervix_mep", "Metaplastic cells"),
                ("cervix_pab", "Parabasal cells"),
                ("cervix_sfi", "Superficial-intermediate cells"),
            )
            + _subs(
                "Kidney Cancer",
                "CT",
                False,
                ("kidney_normal", "Normal kidney"),
                ("kidney_tumor", "Kidney tumour"),
            )
            + _subs(
                "Lung and Colon Cancer",
                "H&E histopathology",
                True,
                ("colon_aca", "Colon adenocarcinoma"),
                ("colon_bnt", "Benign colon tissue"),
                ("lung_aca", "Lung adenocarcinoma"),
                ("lung_bnt", "Benign lung tissue"),
                ("lung_scc", "Lung squamous cell carcinoma"),
            )
            + _subs(
                "Lymphoma",
                "H&E histopathology",
                True,
                ("lymph_cll", "Chronic lymphocytic leukaemia"),
                ("lymph_fl", "Follicular lymphoma"),
                ("lymph_mcl", "Mantle cell lymphoma"),
            )
            + _subs(
                "Oral Cancer",
                "H&E histopathology",
                True,
                ("oral_normal", "Normal oral mucosa"),
                ("oral_scc", "Oral squamous cell carcinoma"),
            ),
            key=lambda s: s.name,
        )
    ),
    sources={
        "ALL": "Acute Lymphoblastic Leukemia (ALL) peripheral blood smear dataset (Aria et al., 2021)",
        "Brain Cancer": "Brain tumour MRI dataset (glioma, meningioma, pituitary; T1 contrast)",
        "Breast Cancer": "BreakHis breast cancer histopathology database (Spanhol et al., 2016)",
        "Cervical Cancer": "SIPaKMeD Pap smear cell dataset (Plissiti et al., 2018)",
        "Kidney Cancer": "CT KIDNEY dataset: normal, cyst, tumour, stone (Islam et al., 2022)",
        "Lung and Colon Cancer": "LC25000 lung and colon histopathology dataset (Borkowski et al., 2019)",
        "Lymphoma": "Malignant lymphoma classification dataset (Orlov et al., 2010)",
        "Oral Cancer": "Histopathologic oral cancer dataset (Rahman et al., 2020)",
    },
    aliases={
        "Acute Lymphoblastic Leukemia": "ALL",
        "Lung Colon Cancer": "Lung and Colon Cancer",
        "Lung & Colon Cancer": "Lung and Colon Cancer",
        "Cervix Cancer": "Cervical Cancer",
    },
)


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """The built-in Multi Cancer taxonomy, or the one in a JSON file (`--taxonomy file.json`)."""
    return MULTI_CANCER if path is None else Taxonomy.from_json(path)
