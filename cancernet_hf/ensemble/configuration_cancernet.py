"""Configuration of the CancerNet ensemble: several image classifiers that vote as one transformers model.

Remote code: this file is copied next to the weights and imported by `transformers` with
`trust_remote_code=True`, so it imports only the standard library and transformers.

Member configs are stored as plain dicts (config objects nested in a config do not survive
`save_pretrained`/`from_pretrained` in transformers 5.x); everything the forward pass needs
(input size, mean/std, weights, temperatures) lives here, so nothing is kept in buffers.
"""

from __future__ import annotations

from transformers import PretrainedConfig


def _pair(size) -> list[int]:
    if isinstance(size, int):
        return [size, size]
    return [int(size[0]), int(size[1])]


class CancerNetEnsembleConfig(PretrainedConfig):
    r"""
    Args:
        member_configs (`list[dict]`): each member's `config.to_dict()` (must contain `model_type`).
        member_names (`list[str]`): a short name per member (shown in the pipeline's `members` field).
        member_weights (`list[float]`): non-negative ensemble weights; normalised to sum to 1.
        member_temperatures (`list[float]`): positive softmax temperature per member (calibration).
        member_image_sizes (`list[[int, int]]`): (height, width) each member expects.
        member_image_means / member_image_stds (`list[list[float]]`): each member's normalisation.
        member_crop_fractions (`list[float]`): central fraction of the input a member sees (ConvNeXt's
            `crop_pct`, resize-then-centre-crop processors); 1.0 = the whole image.
        image_size (`[int, int]`): (height, width) of the ensemble input; defaults to the largest member size.
        sub_to_main (`list[int]`): main-class index of each label (sub-class) index.
        main_names (`list[str]`): main-class names.
        human_names (`list[str]`): a readable name per label.
        dihedral_mask (`list[bool]`): per label, whether rotations/flips keep it (microscopy yes, MRI/CT no).
        uncertainty_threshold (`float`): an image whose top probability is below this is flagged uncertain.
        uncertainty_quantile (`float`): the validation quantile the threshold was fitted at (for the record).
        max_image_pixels / min_image_side (`int`): input guards of the pipeline (decompression bombs, icons).
        taxonomy_name (`str`): the label space the members were trained on.
    """

    model_type = "cancernet-ensemble"

    def __init__(
        self,
        member_configs: list[dict] | None = None,
        member_names: list[str] | None = None,
        member_weights: list[float] | None = None,
        member_temperatures: list[float] | None = None,
        member_image_sizes: list[list[int]] | None = None,
        member_image_means: list[list[float]] | None = None,
        member_image_stds: list[list[float]] | None = None,
        member_crop_fractions: list[float] | None = None,
        image_size: list[int] | int | None = None,
        sub_to_main: list[int] | None = None,
        main_names: list[str] | None = None,
        human_names: list[str] | None = None,
        dihedral_mask: list[bool] | None = None,
        uncertainty_threshold: float = 0.0,
        uncertainty_quantile: float = 0.05,
        max_image_pixels: int = 40_000_000,
        min_image_side: int = 16,
        taxonomy_name: str = "custom",
        **kwargs,
    ):
        self.member_configs = [dict(c) for c in (member_configs or [])]
        n = len(self.member_configs)
        self.member_names = list(member_names or [f"member_{i}" for i in range(n)])
        self.member_weights = [float(w) for w in (member_weights or [1.0] * n)]
        self.member_temperatures = [float(t) for t in (member_temperatures or [1.0] * n)]
        self.member_image_sizes = [_pair(s) for s in (member_image_sizes or [[224, 224]] * n)]
        self.member_image_means = [[float(v) for v in m] for m in (member_image_means or [[0.5] * 3] * n)]
        self.member_image_stds = [[float(v) for v in s] for s in (member_image_stds or [[0.5] * 3] * n)]
        self.member_crop_fractions = [float(f) for f in (member_crop_fractions or [1.0] * n)]
        if image_size is None:
            image_size = max(self.member_image_sizes, key=lambda s: s[0] * s[1], default=[224, 224])
        self.image_size = _pair(image_size)
        self.sub_to_main = [int(i) for i in (sub_to_main or [])]
        self.main_names = list(main_names or [])
        self.human_names = list(human_names or [])
        self.dihedral_mask = [bool(b) for b in (dihedral_mask or [])]
        self.uncertainty_threshold = float(uncertainty_threshold)
        self.uncertainty_quantile = float(uncertainty_quantile)
        self.max_image_pixels = int(max_image_pixels)
        self.min_image_side = int(min_image_side)
        self.taxonomy_name = taxonomy_name
        super().__init__(**kwargs)
        if self.id2label is not None and self.label2id is None:
            self.label2id = {name: i for i, name in self.id2label.items()}
        self._check()

    def _check(self) -> None:
        """Refuse inconsistent configs early (a wrong length here would surface as a shape error much later)."""
        n = len(self.member_configs)
        per_member = {
            "member_names": self.member_names,
            "member_weights": self.member_weights,
            "member_temperatures": self.member_temperatures,
            "member_image_sizes": self.member_image_sizes,
            "member_image_means": self.member_image_means,
            "member_image_stds": self.member_image_stds,
            "member_crop_fractions": self.member_crop_fractions,
        }
        for key, values in per_member.items():
            if len(values) != n:
                raise ValueError(f"CancerNetEnsembleConfig: {key} has {len(values)} entries for {n} members.")
        if any("model_type" not in c for c in self.member_configs):
            raise ValueError("CancerNetEnsembleConfig: every member config dict needs a 'model_type'.")
        if n and (min(self.member_weights) < 0 or sum(self.member_weights) <= 0):
            raise ValueError(
                f"CancerNetEnsembleConfig: member_weights {self.member_weights} must be >= 0, sum > 0."
            )
        if any(t <= 0 for t in self.member_temperatures):
            raise ValueError(
                f"CancerNetEnsembleConfig: member_temperatures {self.member_temperatures} must be > 0."
            )
        if any(not 0 < f <= 1 for f in self.member_crop_fractions):
            raise ValueError(
                f"CancerNetEnsembleConfig: member_crop_fractions {self.member_crop_fractions} not in (0, 1]."
            )
        num = len(self.id2label or {})
        for key in ("sub_to_main", "human_names", "dihedral_mask"):
            values = getattr(self, key)
            if values and len(values) != num:
                raise ValueError(
                    f"CancerNetEnsembleConfig: {key} has {len(values)} entries for {num} labels."
                )
        if self.sub_to_main and max(self.sub_to_main) >= len(self.main_names):
            raise ValueError(
                f"CancerNetEnsembleConfig: sub_to_main points at main class {max(self.sub_to_main)} "
                f"but only {len(self.main_names)} main_names are given."
            )

    @property
    def normalised_weights(self) -> list[float]:
        total = sum(self.member_weights)
        return [w / total for w in self.member_weights]


CancerNetEnsembleConfig.register_for_auto_class()

__all__ = ["CancerNetEnsembleConfig"]
