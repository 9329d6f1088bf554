"""Config dataclasses as data: every config through dict and JSON and back, typed ``FIELD=VALUE``
overrides, and config files read back with one clear line for each way they can be wrong."""

from __future__ import annotations

import dataclasses
import json

import pytest

from acula_edge.align.trainer import PRESETS as ALIGN_PRESETS, AlignPreset, TrainConfig
from acula_edge.augment import AugmentConfig
from acula_edge.config import ConfigError, config_document, from_dict, override, read_config, to_dict
from acula_edge.pipeline import PRESETS, Preset, RunConfig
from acula_edge.text_source import TextSource
from acula_edge.training import LoopConfig
from benchmarks.harness import SETTINGS
from distill.losses import DistillWeights
from distill.trainer import DistillConfig

CONFIGS = [
    *(p for preset in ALIGN_PRESETS.values() for p in (preset.pretrain, preset.align)),
    *ALIGN_PRESETS.values(),
    TrainConfig(init="enc.safetensors", encoder=None, mask_ratio=0.6, text_cache="",
                augment=AugmentConfig(backgrounds="/bg", background_prob=0.3, snr_db=(3.0, 9.5))),
    DistillConfig(teacher="t.safetensors", heads=("a", "b"), hop_s=1.5, act="relu",
                  weights=DistillWeights(text=0.0, relational_kind="similarity")),
    AugmentConfig(), AugmentConfig.microphone(), AugmentConfig.off(), DistillWeights(), LoopConfig(max_steps=7),
    TextSource(reports="r.jsonl", text_online=True),
    *PRESETS.values(), RunConfig("demo", PRESETS["demo"], {"sprsound": "/data/sprsound"}, 3, "/models/minilm"),
    *SETTINGS.values(),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: type(c).__name__)
def test_every_config_survives_dict_and_json(cfg):
    d = to_dict(cfg)
    back = from_dict(type(cfg), json.loads(json.dumps(d)))
    assert back == cfg  # a tuple read back as a list or a nested config as a dict would differ
    assert to_dict(back) == d and json.dumps(to_dict(back)) == json.dumps(d)


def test_nested_configs_are_plain_json_and_come_back_typed():
    cfg = DistillConfig(teacher="t", heads=("x",))
    d = to_dict(cfg)
    assert d["heads"] == ["x"] and d["augment"]["snr_db"] == [5.0, 40.0] and d["weights"]["text"] == 0.1
    back = from_dict(DistillConfig, d)
    assert isinstance(back.augment, AugmentConfig) and isinstance(back.weights, DistillWeights)
    assert back.heads == ("x",) and back.augment.snr_db == (5.0, 40.0)
    assert from_dict(DistillConfig, {"teacher": "t"}) == DistillConfig(teacher="t")  # left out: the defaults


def test_align_presets_are_train_configs_with_the_published_values():
    paper = ALIGN_PRESETS["gpu-paper"]
    assert isinstance(paper, AlignPreset) and (paper.pretrain.mode, paper.align.mode) == ("pretrain", "align")
    assert (paper.align.lr, paper.align.batch_size, paper.align.accum, paper.align.epochs) == (1e-5, 24, 2, 50)
    tiny = ALIGN_PRESETS["cpu-tiny"]
    assert (tiny.pretrain.lr, tiny.pretrain.lambda_align, tiny.align.lr, tiny.align.epochs) == (1e-3, 0.0, 2e-4, 15)


@pytest.mark.parametrize("items, expect", [
    (["max_steps=none"], {"max_steps": None}),
    (["max_steps=12", "gpu=true"], {"max_steps": 12, "gpu": True}),
    (["gpu=False", "distill_epochs=2.5", "formats=onnx,tflite"],
     {"gpu": False, "distill_epochs": 2.5, "formats": "onnx,tflite"}),
])
def test_pipeline_overrides_take_each_fields_type(items, expect):
    got = override(PRESETS["demo"], items)
    assert got == dataclasses.replace(PRESETS["demo"], **expect)
    assert all(type(getattr(got, k)) is type(v) for k, v in expect.items())


def test_overrides_reach_nested_configs_and_tuples():
    base = DistillConfig(teacher="t")
    got = override(base, ["augment.snr_db=1,2.5", "weights.text=0", "heads=a,b", "hop_s=none", "text_cache=",
                          "bf16=no", "act=relu"])
    assert got.augment.snr_db == (1.0, 2.5) and got.weights.text == 0.0 and got.heads == ("a", "b")
    assert got.text_cache == "" and got.hop_s is None and got.bf16 is False and got.act == "relu"
    assert got.augment.noise_prob == base.augment.noise_prob  # the rest of a nested config is kept
    assert override(base, ["heads="]).heads == () and override(base, []) is base


@pytest.mark.parametrize("cfg, item, message", [
    (PRESETS["tiny"], "max_steps=many", "--set max_steps=many: max_steps takes an integer or none"),
    (PRESETS["tiny"], "gpu=maybe", "--set gpu=maybe: gpu takes true or false"),
    (PRESETS["tiny"], "synthetic=1.5", "synthetic takes an integer"),
    (PRESETS["tiny"], "distill_hop=fast", "distill_hop takes a number"),
    (PRESETS["tiny"], "epochs=3", "--set epochs=3: give FIELD=VALUE with FIELD one of description, synthetic"),
    (PRESETS["tiny"], "gpu", "--set gpu: give FIELD=VALUE"),
    (DistillConfig(teacher="t"), "augment.snr_db=1", "augment.snr_db takes comma-separated 2 values (a number, a number)"),
    (DistillConfig(teacher="t"), "augment.loud=1", "FIELD one of augment.shift, augment.noise_prob"),
    (DistillConfig(teacher="t"), "augment=off", "set the fields of augment one by one"),
    (DistillConfig(teacher="t"), "lr.x=1", "lr has no fields"),
])
def test_bad_overrides_are_one_clear_line(cfg, item, message):
    with pytest.raises(ConfigError) as e:
        override(cfg, [item])
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("data, message", [
    ({"teacher": "t", "epochs": "ten"}, "epochs: expected an integer, got \"ten\""),
    ({"teacher": "t", "bf16": 1}, "bf16: expected true or false, got 1"),
    ({"teacher": "t", "augment": {"snr_db": [1]}}, "augment.snr_db: expected a list of 2 values"),
    ({"teacher": "t", "augment": {"loud": 1}}, "augment: unknown AugmentConfig field loud"),
    ({"teacher": "t", "weights": 3}, "weights: expected an object of DistillWeights settings"),
    ({"teacher": "t", "colour": 1, "size": 2}, "unknown DistillConfig fields colour, size"),
    ({"teacher": "t", "hop_s": "1"}, "hop_s: expected a number or null"),
])
def test_bad_dicts_name_the_field(data, message):
    with pytest.raises(ConfigError) as e:
        from_dict(DistillConfig, data)
    assert message in str(e.value)


def test_config_files_are_read_back_or_refused_in_one_line(tmp_path):
    run = RunConfig("tiny", dataclasses.replace(PRESETS["tiny"], max_steps=None), {"icbhi": "/d"}, 2)
    good = tmp_path / "config.json"
    good.write_text(config_document(run, "pipeline"))
    assert json.loads(good.read_text())["stage"] == "pipeline"
    assert read_config(good, RunConfig, "pipeline") == run
    training = tmp_path / "training.json"
    training.write_text(json.dumps({"stage": "distill", "training": to_dict(DistillConfig(teacher="t")), "windows": 9}))
    assert read_config(training, DistillConfig, "distill", key="training") == DistillConfig(teacher="t")
    files = {"bad.json": "{\"stage\": ", "list.json": "[1, 2]", "nokey.json": json.dumps({"stage": "distill"}),
             "unknown.json": json.dumps({**to_dict(run), "colour": "red"}),
             "invalid.json": json.dumps({"training": {**to_dict(TrainConfig()), "lr": -1.0}})}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    cases = [
        (tmp_path / "none.json", RunConfig, "pipeline", None, "none.json: no such file"),
        (tmp_path / "bad.json", RunConfig, "pipeline", None, "bad.json: not valid JSON"),
        (tmp_path / "list.json", RunConfig, "pipeline", None, "list.json: expected a JSON object"),
        (training, RunConfig, "pipeline", None, "a `distill` run's config, not a `pipeline` one"),
        (tmp_path / "nokey.json", DistillConfig, "distill", "training", "no 'training' settings"),
        (tmp_path / "unknown.json", RunConfig, "pipeline", None, "unknown RunConfig field colour"),
        (tmp_path / "invalid.json", TrainConfig, "align train", "training", "bad training config: lr > 0"),
    ]
    for path, cls, stage, key, message in cases:
        with pytest.raises(ConfigError) as e:
            read_config(path, cls, stage, key)
        text = str(e.value)
        assert text.startswith(f"--config {path}: ") and message in text and "\n" not in text, text


def test_preset_fields_keep_their_types_through_a_file(tmp_path):
    """An int in a float field stays an int, so that a config written again is the same text."""
    path = tmp_path / "config.json"
    path.write_text(config_document(RunConfig("tiny", PRESETS["tiny"]), "pipeline"))
    again = read_config(path, RunConfig, "pipeline")
    assert config_document(again, "pipeline") == path.read_text()
    assert isinstance(again.settings, Preset) and again.settings == PRESETS["tiny"]
