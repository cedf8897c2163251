"""One network, several styles (conditional instance norm, Dumoulin et al. 2017): each style its own
scale and shift in every normalisation, blends as convex combinations of them, in one forward pass;
distilled from single-style networks; picked and blended with stylize.py --model NAME --style."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from texture_nets import TextureNetsError, load_checkpoint, load_generator, save_checkpoint
from texture_nets.cli import stylize_main, train_main
from texture_nets.core.checkpoint import make_checkpoint
from texture_nets.core.layers import ConditionalInstanceNorm, blend_weights, styles_blended
from texture_nets.core.pyramid import GeneratorConfig, TextureNetwork
from texture_nets.inference.engine import Engine, stylize_tensor
from texture_nets.inference.options import StylizeOptions

from .conftest import as_argv, smooth_image, tiny_overrides

NAMES = ("ink", "fire", "moss")


def random_network(style_names=(), seed=0) -> TextureNetwork:
    """A small pyramid whose scales and shifts differ per style (as if trained)."""
    torch.manual_seed(seed)
    net = TextureNetwork(GeneratorConfig(num_scales=3, channels=4, max_channels=8, noise_channels=3,
                                         noise_factor=0.1, style_names=style_names))
    for module in net.modules():
        if isinstance(module, ConditionalInstanceNorm):
            torch.nn.init.normal_(module.style_weight, 1.0, 0.5)
            torch.nn.init.normal_(module.style_bias, 0.0, 0.5)
        elif isinstance(module, torch.nn.InstanceNorm2d) and module.affine:
            torch.nn.init.normal_(module.weight, 1.0, 0.5)
            torch.nn.init.normal_(module.bias, 0.0, 0.5)
    return net.eval()


def save(net: TextureNetwork, path) -> None:
    save_checkpoint(make_checkpoint(net, style={"name": path.stem, "images": []}, train={}, step=1, losses={}), path)


def test_a_blend_normalises_with_the_convex_combination_of_the_styles_scales_and_shifts():
    norm = ConditionalInstanceNorm(5, 3)
    torch.nn.init.normal_(norm.style_weight)
    torch.nn.init.normal_(norm.style_bias)
    weights = blend_weights(NAMES, {"ink": 3, "moss": 1})
    assert weights.tolist() == [0.75, 0.0, 0.25]
    x = torch.randn(2, 5, 8, 8)
    with styles_blended(weights):
        out = norm(x)
    scale = 0.75 * norm.style_weight[0] + 0.25 * norm.style_weight[2]
    shift = 0.75 * norm.style_bias[0] + 0.25 * norm.style_bias[2]
    plain = torch.nn.functional.instance_norm(x, eps=norm.eps)
    assert torch.allclose(out, plain * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1), atol=1e-5)


def test_each_style_is_its_own_picture_and_a_pure_blend_is_that_style():
    net, photo = random_network(NAMES), torch.rand(1, 3, 40, 48)
    seeded = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    with torch.no_grad():
        ink = net(photo, style=blend_weights(NAMES, {"ink": 1}), generator=seeded())
        fire = net(photo, style=blend_weights(NAMES, {"fire": 1}), generator=seeded())
        pure = net(photo, style=blend_weights(NAMES, {"ink": 2, "fire": 0}), generator=seeded())
    assert (ink - fire).abs().mean() > 0.01
    assert torch.equal(ink, pure)
    with pytest.raises(ValueError, match="needs the style"):
        net(photo)


def test_a_blend_tiled_is_the_blend_in_one_pass():
    net, photo = random_network(NAMES), torch.rand(1, 3, 72, 88)
    engine = Engine(net, StylizeOptions(seed=5, style="ink=0.3,moss=0.7"))
    tiled = Engine(net, StylizeOptions(seed=5, style="ink=0.3,moss=0.7", tile=32))
    assert (engine.stylize(photo) - tiled.stylize(photo)).abs().max() < 1e-4


@pytest.mark.parametrize("names,match", [(("a", "a"), "distinct"), (("a",), "two or more"), (("a", ""), "distinct")])
def test_style_names_must_be_two_or_more_distinct_names(names, match):
    with pytest.raises(ValueError, match=match):
        GeneratorConfig(style_names=names)


def test_a_checkpoint_of_several_styles_keeps_its_names_and_weights(tmp_path):
    net = random_network(NAMES)
    save(net, tmp_path / "trio.pt")
    loaded = load_generator(tmp_path / "trio.pt")
    assert loaded.config.style_names == NAMES
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), loaded.state_dict().values()))


@pytest.mark.parametrize("names", [["ink", "ink"], ["ink", 3], [f"s{i}" for i in range(300)]])
def test_a_checkpoint_with_bad_style_names_is_refused(tmp_path, names):
    net = random_network(NAMES)
    checkpoint = make_checkpoint(net, style={}, train={}, step=1, losses={})
    checkpoint["model"]["style_names"] = names
    torch.save(checkpoint, tmp_path / "bad.pt")
    with pytest.raises(TextureNetsError, match="style_names"):
        load_generator(tmp_path / "bad.pt")


@pytest.fixture
def trio(tmp_path):
    path = tmp_path / "trio.pt"
    save(random_network(NAMES), path)
    photo = tmp_path / "photo.png"
    smooth_image(np.random.default_rng(2), 56, 40).save(photo)
    return path, photo


def stylized(model, photo, out, *flags) -> np.ndarray | None:
    status = stylize_main(["--model", str(model), "--input", str(photo), "--output", str(out), *flags])
    return np.asarray(Image.open(out)) if status == 0 else None


def test_stylize_picks_a_style_and_blends_in_one_pass(trio, tmp_path):
    model, photo = trio
    ink = stylized(model, photo, tmp_path / "ink.png", "--style", "ink")
    also_ink = stylized(model, photo, tmp_path / "ink2.png", "--style", "ink=1,fire=0")
    fire = stylized(model, photo, tmp_path / "fire.png", "--style", "fire")
    mixed = stylized(model, photo, tmp_path / "mix.png", "--style", "ink=0.5,fire=0.5")
    assert np.array_equal(ink, also_ink)
    assert not np.array_equal(ink, fire) and not np.array_equal(mixed, ink) and not np.array_equal(mixed, fire)
    engine = Engine.load(model, StylizeOptions(style="ink"))
    expected = np.asarray(engine.stylize_picture(Image.open(photo)))
    assert np.abs(expected.astype(int) - ink.astype(int)).max() <= 1


@pytest.mark.parametrize("choice,match", [
    ("oak", "unknown style 'oak'"), ("ink=-1", "finite and ≥ 0"), ("ink=nan", "finite and ≥ 0"),
    ("ink=0,fire=0", "all 0"), ("ink=1e308,fire=1e308", "overflows"), ("ink=x", "not a number"),
    ("ink,ink", "each style once"), (",,", "names no style")])
def test_a_bad_style_choice_is_refused_in_one_line(trio, tmp_path, capsys, choice, match):
    model, photo = trio
    assert stylized(model, photo, tmp_path / "out.png", "--style", choice) is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0]
    assert not (tmp_path / "out.png").exists()


def test_a_network_of_several_styles_needs_a_style_and_one_of_one_style_takes_none(trio, tmp_path, capsys):
    model, photo = trio
    assert stylized(model, photo, tmp_path / "out.png") is None
    assert "holds 3 styles (ink, fire, moss)" in capsys.readouterr().err
    single = tmp_path / "single.pt"
    save(random_network(), single)
    assert stylized(single, photo, tmp_path / "out.png", "--style", "ink") is None
    assert "holds one style" in capsys.readouterr().err


def test_distillation_pulls_the_student_towards_each_teacher(photos_dir, style_path, tmp_path):
    """Two teachers; the student's validation distance (the mean over both styles) falls as it trains."""
    teachers = []
    for seed, name in enumerate(("ink", "fire")):
        path = tmp_path / f"{name}.pt"
        save(random_network(seed=seed + 1), path)
        teachers.append(str(path))
    overrides = tiny_overrides(photos_dir, style_path, tmp_path / "ck", name="duo", teachers=teachers,
                               num_iterations=40, learning_rate=1e-2, val_every=40, num_scales=3, channels=4)
    del overrides["texture"]
    first = tiny_overrides(photos_dir, style_path, tmp_path / "ck0", name="duo", teachers=teachers,
                           num_iterations=1, learning_rate=1e-9, val_every=1, num_scales=3, channels=4)
    del first["texture"]
    assert train_main(as_argv(first)) == 0 and train_main(as_argv(overrides)) == 0
    start = load_checkpoint(tmp_path / "ck0" / "duo.pt")
    trained = load_checkpoint(tmp_path / "ck" / "duo.pt")
    assert trained["model"]["style_names"] == ("ink", "fire")
    assert [image["name"] for image in trained["style"]["images"]] == ["ink", "fire"]
    assert trained["losses"]["total"] < 0.5 * start["losses"]["total"]
    photo = torch.rand(1, 3, 32, 32)
    student = load_generator(tmp_path / "ck" / "duo.pt")
    with styles_blended(blend_weights(("ink", "fire"), {"fire": 1})):
        fire = stylize_tensor(student, photo, seed=1)
    teacher = load_generator(teachers[1])
    assert (fire - stylize_tensor(teacher, photo, seed=1)).abs().mean() < \
        (fire - stylize_tensor(load_generator(teachers[0]), photo, seed=1)).abs().mean()


def test_teachers_and_a_texture_exclude_each_other(photos_dir, style_path, tmp_path, capsys):
    overrides = tiny_overrides(photos_dir, style_path, tmp_path, name="duo", teachers=["mosaic", "candy"])
    assert train_main(as_argv(overrides)) == 2
    assert "exclude each other" in capsys.readouterr().err


def test_the_onnx_engine_takes_the_style_weights_as_an_input():
    pytest.importorskip("onnxruntime")
    from texture_nets.inference.onnx_export import OnnxGenerator
    net, photos = random_network(NAMES), torch.rand(2, 3, 40, 56)
    onnx = OnnxGenerator(net)
    assert "style" in onnx.inputs
    for blend in ({"ink": 0.2, "moss": 0.8}, {"fire": 1}):
        with styles_blended(blend_weights(NAMES, blend)):
            assert (stylize_tensor(net, photos, seed=3) - stylize_tensor(onnx, photos, seed=3)).abs().max() < 1e-4


def test_export_writes_a_model_onnx_runtime_runs_with_the_documented_inputs(trio, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    from texture_nets.cli import main
    model, _ = trio
    out = tmp_path / "trio.onnx"
    assert main(["export", str(model), str(out)]) == 0
    assert "inputs photo, noise_factor, style, noise0, noise1, noise2" in capsys.readouterr().out
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["photo", "noise_factor", "style", "noise0", "noise1", "noise2"]
    assert session.get_modelmeta().custom_metadata_map["style_names"] == "ink,fire,moss"
    net = load_generator(model)
    photo = torch.rand(1, 3, 32, 48)  # sides: multiples of net.multiple (4)
    noise = net.make_noise(1, 32, 48, generator=torch.Generator().manual_seed(0))
    weights = blend_weights(NAMES, {"moss": 1})
    (picture,) = session.run(["picture"], {"photo": photo.numpy(), "noise_factor": np.array(0.1, np.float32),
                                           "style": weights.numpy(), **{f"noise{s}": n.numpy() for s, n in
                                                                        enumerate(noise)}})
    with torch.no_grad():
        expected = net(photo, noise=noise, noise_factor=0.1, style=weights)
    assert np.abs(picture - expected.numpy()).max() < 1e-4


@pytest.mark.parametrize("output,match", [("out.txt", "must be an .onnx file"), ("trio.pt", "must be an .onnx")])
def test_export_refuses_an_output_that_is_not_an_onnx_file(trio, tmp_path, capsys, output, match):
    from texture_nets.cli import main
    model, _ = trio
    before = model.read_bytes()
    assert main(["export", str(model), str(tmp_path / output)]) == 2
    assert match in capsys.readouterr().err
    assert model.read_bytes() == before


def test_the_web_app_lists_a_networks_styles_and_stylizes_a_blend(trio, tmp_path):
    pytest.importorskip("fastapi")
    import io

    from fastapi.testclient import TestClient

    from texture_nets.web import WebConfig, create_app
    model, photo = trio
    config = WebConfig(checkpoint_dir=str(model.parent), shipped=False, data_root=str(tmp_path), engine="torch",
                       max_concurrent=1, max_queue=4)
    with TestClient(create_app(config)) as client:
        (listed,) = [m for m in client.get("/api/models").json()["models"] if m["name"] == "trio"]
        assert listed["styles"] == list(NAMES)
        assert client.get(listed["thumbnail"]).status_code == 200

        def post(style: str):
            return client.post("/api/stylize", data={"model": "trio", "style": style, "seed": "0"},
                               files={"file": ("p.png", photo.read_bytes(), "image/png")})
        ink, blend = post("ink"), post("ink=0.5,moss=0.5")
        assert ink.status_code == 200 and blend.status_code == 200
        assert np.asarray(Image.open(io.BytesIO(ink.content))).tolist() != \
            np.asarray(Image.open(io.BytesIO(blend.content))).tolist()
        expected = Engine.load(model, StylizeOptions(style="ink", seed=0)).stylize_picture(Image.open(photo))
        got = np.asarray(Image.open(io.BytesIO(ink.content))).astype(int)
        assert np.abs(got - np.asarray(expected).astype(int)).max() <= 1
        for bad, words in (("oak", "unknown style 'oak'"), ("", "holds 3 styles"), ("ink=-2", "finite and ≥ 0")):
            response = post(bad)
            assert response.status_code == 400 and words in response.json()["detail"]


def test_a_new_style_learns_by_its_scale_and_shift_alone(photos_dir, style_path, tmp_path):
    """--new_style on a network of several: one more style, whose scale and shift train while every
    shared weight (and every other style) stays exactly as it was."""
    base_path = tmp_path / "trio.pt"
    base = random_network(NAMES)
    save(base, base_path)
    overrides = tiny_overrides(photos_dir, style_path, tmp_path / "ck", name="quartet", init_from=str(base_path),
                               new_style="stripes", num_iterations=4, num_scales=3, channels=4, max_channels=8)
    assert train_main(as_argv(overrides)) == 0
    grown = load_generator(tmp_path / "ck" / "quartet.pt")
    assert grown.config.style_names == (*NAMES, "stripes")
    before, after = base.state_dict(), grown.state_dict()
    changed = []
    for key, value in after.items():
        if key.endswith(("style_weight", "style_bias")):
            assert torch.equal(value[:3], before[key]), key  # the other styles' rows are untouched
            changed.append(not torch.allclose(value[3], before[key].mean(dim=0)))
        else:
            assert torch.equal(value, before[key]), key  # the shared weights are frozen
    assert any(changed)  # the new style's own scale and shift have learnt
    photo = torch.rand(1, 3, 32, 32)
    new = Engine(grown, StylizeOptions(seed=1, style="stripes")).stylize(photo)
    old = Engine(grown, StylizeOptions(seed=1, style="ink")).stylize(photo)
    assert torch.allclose(old, Engine(base, StylizeOptions(seed=1, style="ink")).stylize(photo), atol=1e-6)
    assert (new - old).abs().mean() > 1e-3


def test_a_new_style_needs_a_network_of_several(photos_dir, style_path, tmp_path, capsys):
    single = tmp_path / "single.pt"
    save(random_network(), single)
    overrides = tiny_overrides(photos_dir, style_path, tmp_path / "ck", name="x", init_from=str(single),
                               new_style="stripes", num_scales=3, channels=4, max_channels=8)
    assert train_main(as_argv(overrides)) == 2
    assert "holds one" in capsys.readouterr().err
