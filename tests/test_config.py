from pathlib import Path

import pytest

from texture_nets import TextureNetsError, TrainConfig
from texture_nets.cli import resolve_train_config, train_parser
from texture_nets.core.settings import coerce_text, config_to_toml
from texture_nets.core.vgg import ENV_VAR
from texture_nets.training.config import make_config
from texture_nets.training.recipes import load_config_file, resolve_preset

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
BASE = dict(data_dir="photos", texture=["style.jpg"])


def test_toml_file_then_flags_override(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('image_size = 128\nstyle_layers = ["relu1_1", "relu2_1"]\nstyle_weight = 3\nbatch_size = 8\n')
    values = load_config_file(str(path))
    assert values["style_weight"] == 3.0 and isinstance(values["style_weight"], float)
    config = make_config(values, {**BASE, "batch_size": 2})
    assert (config.image_size, config.batch_size, config.style_layers) == (128, 2, ["relu1_1", "relu2_1"])
    assert config.learning_rate == TrainConfig().learning_rate


def test_unknown_key_suggests_the_right_one(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text("style_wieght = 3\n")
    with pytest.raises(TextureNetsError, match="did you mean style_weight"):
        load_config_file(str(path))


@pytest.mark.parametrize("text,match", [("image_size = 'big'", "image_size"), ("amp = 1", "amp"),
                                        ("image_size = [", "TOML")])
def test_wrong_types_and_bad_toml_are_clear_errors(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n")
    with pytest.raises(TextureNetsError, match=match):
        load_config_file(str(path))


@pytest.mark.parametrize("override,match", [
    (dict(texture=[]), "--texture"),
    (dict(data_dir=""), "--data_dir"),
    (dict(image_size=8), "image_size"),
    (dict(image_size=64, photo_size=32), "photo_size"),
    (dict(photo_size=-1), "photo_size"),
    (dict(batch_size=0), "batch_size"),
    (dict(learning_rate=0.0), "learning_rate"),
    (dict(style_weight=-1.0), "style_weight"),
    (dict(style_blend=[1.0, 2.0]), "style_blend"),
    (dict(style_blend=[0.0]), "not all zero"),
    (dict(style_layers=["relu1_1", "relu6_1"]), "relu6_1"),
    (dict(style_weights=[1.0, 2.0]), "style_weights"),
    (dict(categories=["dog"]), "--annotations"),
])
def test_absurd_options_are_refused(override, match):
    with pytest.raises(TextureNetsError, match=match):
        make_config({}, {**BASE, **override})


def test_presets_parse_and_resolve_by_name():
    presets = sorted(CONFIGS.glob("*.toml"))
    assert presets
    for preset in presets:
        make_config(load_config_file(preset.stem), BASE)
        assert resolve_preset(preset.stem) == preset
    with pytest.raises(TextureNetsError, match="preset"):
        resolve_preset("no_such_preset")


def test_dumped_config_reads_back_identically(tmp_path):
    config = make_config({}, {**BASE, "style_blend": [1.0], "categories": [], "annotations": "a.json"})
    path = tmp_path / "dump.toml"
    path.write_text(config_to_toml(config))
    assert make_config(load_config_file(str(path))) == config


def test_cli_flags_lists_and_env_var_for_vgg_weights():
    args = train_parser().parse_args(["--data_dir", "d", "--texture", "a.jpg", "--texture", "b.jpg",
                                      "--style_blend", "0.7,0.3", "--style_layers", "relu1_1,relu2_1",
                                      "--style_weights", "5,6", "--precision", "fp32", "--cuda"])
    config, resume = resolve_train_config(args, environ={ENV_VAR: "/weights/vgg.pth"})
    assert resume is None
    assert config.texture == ["a.jpg", "b.jpg"] and config.style_blend == [0.7, 0.3]
    assert config.style_weights == [5.0, 6.0] and config.precision == "fp32" and config.device == "cuda"
    assert config.vgg_weights == "/weights/vgg.pth"
    config, _ = resolve_train_config(train_parser().parse_args(["--data_dir", "d", "--texture", "a.jpg"]), environ={})
    assert config.vgg_weights == "imagenet"
    flag, _ = resolve_train_config(train_parser().parse_args(["--data_dir", "d", "--texture", "a.jpg",
                                                              "--vgg_weights", "x.pth"]), environ={ENV_VAR: "y"})
    assert flag.vgg_weights == "x.pth"


def test_every_config_field_has_a_flag_and_help():
    parser = train_parser()
    flags = {a.dest: a for a in parser._actions}
    for name in TrainConfig.__dataclass_fields__:
        assert name in flags and flags[name].help


@pytest.mark.parametrize("override,match", [
    (dict(mode="textures"), "mode must be one of"), (dict(device="gpu"), "device must be one of"),
    (dict(log_every=0), "log_every"), (dict(lr_decay=-0.5), "lr_decay"), (dict(style_weight=float("nan")), "finite"),
    (dict(seed=2**64), "seed"), (dict(style_size=4), "style_size"),
])
def test_values_outside_the_choices_or_range_are_refused(override, match):
    with pytest.raises(TextureNetsError, match=match):
        make_config({}, {**BASE, **override})


def test_validate_keeps_its_conversions():
    """A list setting given as one string (a caller's, or an old checkpoint's) becomes the list it names,
    not a list of its letters."""
    config = TrainConfig(texture="abc.jpg", style_layers="relu1_1,relu2_1", data_dir="photos")
    config.validate()
    assert config.texture == ["abc.jpg"] and config.style_layers == ["relu1_1", "relu2_1"]


def test_every_training_setting_states_its_policy():
    """Each TrainConfig field says whether it may change on resume, belongs to the recipe and may vary
    per phase (core/settings.py's metadata): the lists the run path and recipes use come from these."""
    from dataclasses import fields

    from texture_nets.training.config import PHASE_FIXED, POLICIES, RECIPE_KEYS, RESUMABLE
    unclassified = [f"{f.name}.{policy}" for f in fields(TrainConfig) for policy in POLICIES
                    if not isinstance(f.metadata.get(policy), bool)]
    assert not unclassified
    assert {"style_weight", "learning_rate", "content_layers"} <= set(RECIPE_KEYS)
    assert {"data_dir", "checkpoint_dir", "viz"} <= RESUMABLE and "style_weight" not in RESUMABLE
    assert {"arch", "texture", "data_dir"} <= PHASE_FIXED and "style_weight" not in PHASE_FIXED


def test_the_default_recipe_spells_out_the_dataclass_defaults():
    """configs/default.toml is a starting point to copy: every value in it is TrainConfig's default."""
    from dataclasses import fields

    from texture_nets.core.settings import default_of
    defaults = {f.name: default_of(f) for f in fields(TrainConfig)}
    values = load_config_file(str(Path(__file__).resolve().parent.parent / "configs" / "default.toml"))
    assert values and {k: v for k, v in values.items() if defaults[k] != v} == {}


@pytest.mark.parametrize("value,kind,expected", [("on", bool, True), (" False ", bool, False), ("", bool, False),
                                                 (True, bool, True), ("0.5", float, 0.5), (2, float, 2.0),
                                                 ("", float | None, None), (None, float | None, None),
                                                 ("3", float | None, 3.0), ("7", int, 7), (" candy ", str, "candy")])
def test_text_from_a_query_or_form_is_read_as_the_fields_type(value, kind, expected):
    read = coerce_text("name", value, kind)
    assert read == expected and type(read) is type(expected)


@pytest.mark.parametrize("value,kind,words", [("maybe", bool, "true or false"), ("x" * 10_000, float, "a number"),
                                              ("", float, "a number"), ([1], bool, "true/false"),
                                              ("1.5", int, "a number")])
def test_text_that_is_not_the_fields_type_is_one_short_line(value, kind, words):
    with pytest.raises(TextureNetsError, match=words) as caught:
        coerce_text("name", value, kind)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 120
