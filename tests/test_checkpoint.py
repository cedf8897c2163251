import pytest
import torch

from texture_nets import TextureNetsError, TextureNetwork, load_checkpoint, load_generator, save_checkpoint, stylize
from texture_nets.core.checkpoint import FORMAT_VERSION, make_checkpoint, unwrap
from texture_nets.core.images import tensor_to_image


def small_checkpoint(step=7):
    torch.manual_seed(0)
    net = TextureNetwork(num_scales=3, channels=4, noise_factor=0.3)
    style = {"name": "stripes", "images": [{"name": "s.png", "sha256": "ab" * 32, "size": [48, 48]}], "blend": [1.0]}
    return net, make_checkpoint(net, style=style, train={"image_size": 32}, step=step, losses={"total": 1.5})


def test_round_trip_rebuilds_the_network_and_stylizes_bit_identically(tmp_path):
    net, checkpoint = small_checkpoint()
    path = save_checkpoint(checkpoint, tmp_path / "style.pt")
    raw = torch.load(path, weights_only=True)  # plain data only
    assert raw["format_version"] == FORMAT_VERSION and raw["step"] == 7 and raw["losses"] == {"total": 1.5}
    assert raw["model"]["noise_factor"] == 0.3 and raw["style"]["name"] == "stripes"
    assert {"created", "texture_nets_version", "torch_version", "train", "state_dict"} <= set(raw)
    loaded = load_generator(path)
    assert loaded.config == net.config
    photo = tensor_to_image(torch.rand(3, 37, 29))
    a = stylize(photo, net.eval(), seed=4)
    b = stylize(photo, path, seed=4)
    assert a.size == (29, 37) and a.tobytes() == b.tobytes()


def test_atomic_write_leaves_no_temp_files_and_keeps_the_old_file_on_failure(tmp_path):
    _, checkpoint = small_checkpoint()
    path = save_checkpoint(checkpoint, tmp_path / "style.pt")
    before = path.read_bytes()
    with pytest.raises(Exception):
        save_checkpoint({**checkpoint, "bad": lambda: None}, path)  # cannot be pickled
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["style.pt"]


def test_wrapped_models_are_saved_unwrapped():
    net, _ = small_checkpoint()
    wrapper = torch.nn.Module()
    wrapper.module = net
    assert unwrap(wrapper) is net
    keys = make_checkpoint(wrapper, style={}, train={}, step=0, losses={})["state_dict"].keys()
    assert keys == net.state_dict().keys()


def test_not_a_checkpoint_and_unknown_version_are_clear_errors(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00\x01 not torch")
    with pytest.raises(TextureNetsError, match="garbage.pt: not a texture_nets checkpoint"):
        load_checkpoint(garbage)
    plain = tmp_path / "plain.pt"
    torch.save(TextureNetwork(num_scales=2, channels=2).state_dict(), plain)
    with pytest.raises(TextureNetsError, match="plain.pt: not a texture_nets checkpoint"):
        load_checkpoint(plain)
    _, checkpoint = small_checkpoint()
    future = tmp_path / "future.pt"
    torch.save({**checkpoint, "format_version": 99}, future)
    with pytest.raises(TextureNetsError, match="format version 99"):
        load_checkpoint(future)
    mismatched = tmp_path / "mismatched.pt"
    torch.save({**checkpoint, "model": {**checkpoint["model"], "channels": 5}}, mismatched)
    with pytest.raises(TextureNetsError, match="do not match"):
        load_generator(mismatched)
    with pytest.raises(TextureNetsError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
