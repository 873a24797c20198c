"""Arguments, setup checks and the extras' building blocks (no training here: fast)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from training_data import parse, write_tiny_dataset

from cancernet_hf.errors import SplitError, TrainingSetupError
from cancernet_hf.training.args import resolve_resume
from cancernet_hf.training.common import WindowLoss, check_world_size, process_line, summed_loss
from cancernet_hf.training.extras import BatchMixer, WeightEma, block_ids, param_groups


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("args"), n_train=4, n_val=2, n_test=2)


def test_defaults_suit_a_classifier(tiny, tmp_path):
    data, split = tiny
    _, _, t = parse(["--data_dir", str(data), "--split_file", str(split), "--output_dir", str(tmp_path)])
    assert t.metric_for_best_model == "sub_macro_f1" and t.greater_is_better is True
    assert t.remove_unused_columns is False and t.load_best_model_at_end is True
    assert str(t.eval_strategy.value) == "epoch" and str(t.save_strategy.value) == "epoch"
    assert t.ema_decay is None and t.layer_decay is None and not t.use_mixup


def test_dash_and_underscore_spellings_agree(tiny, tmp_path):
    data, split = tiny
    common = ["--data-dir", str(data), "--split-file", str(split), "--output-dir", str(tmp_path)]
    a = parse(common + ["--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "3"])
    b = parse(common + ["--per-device-train-batch-size", "4", "--gradient-accumulation-steps", "3"])
    assert a[2].per_device_train_batch_size == b[2].per_device_train_batch_size == 4
    assert a[2].gradient_accumulation_steps == b[2].gradient_accumulation_steps == 3
    m, d, t = parse(
        common + ["--model-name-or-path", "swin-tiny", "--no_dihedral", "--label-smoothing-factor", "0.1"]
    )
    assert m.model_name_or_path == "swin-tiny" and d.dihedral is False and t.label_smoothing_factor == 0.1
    assert d.augment_options() == {"dihedral": False}


def test_json_config_file(tiny, tmp_path):
    data, split = tiny
    cfg = tmp_path / "args.json"
    cfg.write_text(
        json.dumps(
            {
                "model_name_or_path": "convnext-tiny",
                "data_dir": str(data),
                "split_file": str(split),
                "output_dir": str(tmp_path / "o"),
                "learning_rate": 0.002,
                "mixup_alpha": 0.8,
                "layer_decay": 0.75,
            }
        )
    )
    m, _, t = parse([str(cfg)])
    assert m.model_name_or_path == "convnext-tiny" and t.learning_rate == 0.002
    assert t.use_mixup and t.layer_decay == 0.75


def test_bad_arguments_say_how_to_fix(tiny, tmp_path):
    data, split = tiny
    with pytest.raises(SplitError, match="cancernet data split"):
        parse(["--data_dir", str(data), "--split_file", str(tmp_path / "nope.json")])
    with pytest.raises(TrainingSetupError, match="mixup_alpha"):
        parse(["--data_dir", str(data), "--split_file", str(split), "--mixup_alpha", "-1"])
    with pytest.raises(TrainingSetupError, match="did you mean|Did you mean"):
        parse(["--data_dir", str(data), "--split_file", str(split), "--auto_augment", "randaugmnt"])
    with pytest.raises(TrainingSetupError, match="renamed --eval_strategy"):  # a 4.x name that 5.x dropped
        parse(["--data_dir", str(data), "--split_file", str(split), "--evaluation_strategy", "epoch"])


def test_world_size_check_refuses_a_mismatch():
    check_world_size(2, env={"WORLD_SIZE": "2"})
    check_world_size(1, env={})
    with pytest.raises(TrainingSetupError, match="ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu"):
        check_world_size(1, env={"WORLD_SIZE": "2"})
    assert process_line(2, 16, 4) == "processes=2 global_batch=128"


def test_resume_latest(tmp_path):
    assert resolve_resume(None, tmp_path) is None
    with pytest.raises(TrainingSetupError, match="no checkpoint"):
        resolve_resume("latest", tmp_path)
    for step in (2, 10, 4):
        (tmp_path / f"checkpoint-{step}").mkdir()
    assert resolve_resume("latest", tmp_path).endswith("checkpoint-10")
    assert resolve_resume(str(tmp_path / "checkpoint-2"), tmp_path).endswith("checkpoint-2")


def test_cli_passes_flags_through():
    from cancernet_hf.cli import main
    from cancernet_hf.cli.train import split_loop

    assert split_loop(["--loop", "accelerate", "--data-dir", "d"]) == ("accelerate", ["--data-dir", "d"])
    assert split_loop(["--data_dir", "d"]) == ("trainer", ["--data_dir", "d"])
    assert main(["train", "--help"]) == 0


def test_window_loss_is_the_mean_over_the_whole_window():
    logits, labels = torch.randn(6, 26), torch.randint(0, 26, (6,))
    mean = torch.nn.functional.cross_entropy(logits, labels)
    parts = [
        WindowLoss()({"logits": logits[s]}, labels[s], num_items_in_batch=6)
        for s in (slice(0, 4), slice(4, 6))
    ]
    assert torch.allclose(sum(parts), mean, atol=1e-6)
    soft = torch.nn.functional.one_hot(labels, 26).float()
    assert torch.allclose(summed_loss(logits, soft), summed_loss(logits, labels), atol=1e-5)


def test_mixer_gives_distributions_even_for_odd_batches():
    torch.manual_seed(0)
    mixer = BatchMixer(26, mixup_alpha=0.8, cutmix_alpha=1.0, prob=1.0, label_smoothing=0.1)
    for n in (4, 5):
        x, y = torch.randn(n, 3, 8, 8), torch.randint(0, 26, (n,))
        mixed, targets = mixer(x, y)
        assert mixed.shape == x.shape and targets.shape == (n, 26)
        assert torch.allclose(targets.sum(1), torch.ones(n), atol=1e-5)


def test_layer_decay_survives_the_hf_scheduler():
    """timm-style lr_scale would be flattened by transformers' schedulers: the scale is folded into lr."""
    from transformers import get_scheduler

    from cancernet_hf.models.members import build_member

    model, _ = build_member("vit-tiny")
    ids, num_blocks = block_ids(model)
    assert num_blocks == 4  # the 4 encoder layers of the preset
    assert ids["vit.embeddings.patch_embeddings.projection.weight"] == 0
    layer3 = [n for n in ids if n.startswith(("vit.layers.3.", "vit.encoder.layer.3."))]
    assert layer3 and all(ids[n] == 4 for n in layer3) and ids["classifier.weight"] == 5
    groups = param_groups(model, lr=1e-3, weight_decay=0.05, layer_decay=0.5)
    opt = torch.optim.AdamW(groups, lr=1e-3)
    sched = get_scheduler("cosine", opt, num_warmup_steps=2, num_training_steps=10)
    for _ in range(5):
        opt.step()
        sched.step()
    lrs = sorted({g["lr"] for g in opt.param_groups})
    assert len(lrs) == num_blocks + 2  # one rate per depth, not one for all
    assert all(math.isclose(b / a, 2.0, rel_tol=1e-9) for a, b in zip(lrs, lrs[1:]))
    assert all("lr_scale" not in g for g in opt.param_groups)
    decayed = [p for g in groups if g["weight_decay"] > 0 for p in g["params"]]
    assert decayed and all(p.ndim > 1 for p in decayed)  # never biases or norms


def test_ema_follows_and_swaps():
    model = torch.nn.Linear(3, 2)
    ema = WeightEma(model, decay=0.5)
    before = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    assert torch.all(ema.shadow["weight"] > before) and torch.all(ema.shadow["weight"] < model.weight)
    trained = model.weight.detach().clone()
    with ema.swapped(model):
        assert torch.equal(model.weight, ema.shadow["weight"])
    assert torch.equal(model.weight, trained)
    clone = WeightEma(model, decay=0.9)
    clone.load_state_dict(ema.state_dict())
    assert clone.num_updates == 1 and torch.equal(clone.shadow["weight"], ema.shadow["weight"])
