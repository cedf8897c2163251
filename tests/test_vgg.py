import urllib.error

import pytest
import torch

from texture_nets import TextureNetsError
from texture_nets.core.vgg import ENV_VAR, LAYER_NAMES, VGG19Features, load_vgg19_weights, vgg19_features

from .conftest import SHARED_VGG


def test_layer_names_follow_vgg_naming():
    assert len(LAYER_NAMES) == 37
    assert LAYER_NAMES[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert LAYER_NAMES.index("relu4_2") == 22 and LAYER_NAMES.index("relu5_1") == 29
    assert LAYER_NAMES[-3:] == ("conv5_4", "relu5_4", "pool5")


def test_same_state_dict_keys_as_torchvision():
    from torchvision.models.vgg import cfgs, make_layers
    assert vgg19_features().state_dict().keys() == make_layers(cfgs["E"]).state_dict().keys()


def test_trimmed_after_deepest_layer_frozen_and_eval():
    vgg = VGG19Features(["relu1_1", "relu3_1"], weights="random")
    assert len(vgg.features) == LAYER_NAMES.index("relu3_1") + 1
    assert not any(p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training


def test_conv_and_relu_outputs_are_different_features():
    torch.manual_seed(0)
    vgg = VGG19Features(["conv2_1", "relu2_1"], weights="random")
    feats = vgg(torch.rand(1, 3, 32, 32))
    conv, relu = feats["conv2_1"], feats["relu2_1"]
    assert conv.min() < 0  # the ReLU did not overwrite the conv output in place
    assert torch.equal(relu, conv.clamp_min(0))


def test_input_is_normalised_inside():
    torch.manual_seed(0)
    vgg = VGG19Features(["conv1_1"], weights="random")
    x = torch.rand(1, 3, 8, 8)
    conv = vgg.features[0]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert torch.allclose(vgg(x)["conv1_1"], conv((x - mean) / std), atol=1e-6)


def test_unknown_layer_is_a_clear_error():
    with pytest.raises(TextureNetsError, match="relu9_9"):
        VGG19Features(["relu9_9"], weights="random")


def test_weights_file_features_or_full_model_layout(tmp_path):
    state = vgg19_features().state_dict()
    torch.save({k: v.half() for k, v in state.items()}, tmp_path / "features.pth")
    torch.save({f"features.{k}": v for k, v in state.items()} | {"classifier.0.weight": torch.zeros(2, 2)},
               tmp_path / "full.pth")
    for name in ("features.pth", "full.pth"):
        vgg = VGG19Features(["relu1_1"], weights=str(tmp_path / name))
        assert torch.allclose(vgg.features[0].weight, state["0.weight"], atol=1e-2)


@pytest.mark.parametrize("content", ["garbage", "wrong_keys", "missing"])
def test_bad_weights_file_is_a_clear_error(tmp_path, content):
    path = tmp_path / "vgg.pth"
    if content == "garbage":
        path.write_bytes(b"not a torch file")
    elif content == "wrong_keys":
        torch.save({"0.weight": torch.zeros(3)}, path)
    with pytest.raises(TextureNetsError, match="vgg.pth"):
        load_vgg19_weights(str(path))


def test_offline_imagenet_download_names_option_and_env_var(monkeypatch):
    from torchvision.models import VGG19_Weights

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(type(VGG19_Weights.IMAGENET1K_V1), "get_state_dict", offline)
    with pytest.raises(TextureNetsError) as info:
        load_vgg19_weights("imagenet")
    assert "--vgg_weights" in str(info.value) and ENV_VAR in str(info.value)


@pytest.mark.shared
def test_real_caffe_weights_load_and_give_the_documented_activation_scale():
    vgg = VGG19Features(["relu4_1", "relu5_1"], weights=str(SHARED_VGG))
    torch.manual_seed(0)
    # A smooth random 'photo': VGG's deep activations on it are in the hundreds, as ../shared/README says.
    x = torch.nn.functional.interpolate(torch.rand(1, 3, 16, 16), size=128, mode="bilinear")
    feats = vgg(x)
    assert 20 < feats["relu4_1"].mean() < 2000
    assert feats["relu5_1"].mean() > 1
