import pytest
import torch
from torch import nn

from texture_nets import TextureNetsError
from texture_nets.core.losses import PerceptualLoss, gram_matrix, relative_mse, total_variation


def test_gram_matrix_against_hand_computation():
    # one image, 2 channels, 1x2 pixels: F = [[1, 2], [3, 4]]
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)
    expected = torch.tensor([[1 * 1 + 2 * 2, 1 * 3 + 2 * 4], [3 * 1 + 4 * 2, 3 * 3 + 4 * 4]]) / (2 * 1 * 2)
    assert torch.allclose(gram_matrix(f)[0], expected)


def test_gram_is_float32_under_half_inputs():
    f = torch.randn(2, 4, 3, 3).half()
    g = gram_matrix(f)
    assert g.dtype == torch.float32 and g.shape == (2, 4, 4)


def test_relative_mse_and_total_variation_formulas():
    value, target = torch.tensor([1.0, 2.0]), torch.tensor([2.0, 2.0])
    assert torch.isclose(relative_mse(value, target), torch.tensor((1 + 0) / 2 / ((4 + 4) / 2)))
    img = torch.tensor([[0.0, 1.0], [0.0, 0.0]]).view(1, 1, 2, 2)
    # vertical diffs: |0-0|, |0-1| → mean 0.5; horizontal: |1-0|, |0-0| → mean 0.5
    assert torch.isclose(total_variation(img), torch.tensor(1.0))


class Identity1x1(nn.Module):
    """A tiny stand-in encoder: 'layers' a and b are fixed 1x1 convolutions of the image."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Conv2d(3, 4, 1)
        self.b = nn.Conv2d(3, 5, 1)
        self.calls = 0

    def forward(self, x, layers):
        self.calls += 1
        return {name: getattr(self, name)(x) for name in layers}


def make_loss(**kwargs):
    encoder = Identity1x1()
    options = dict(style_layers=["a", "b"], content_layers=["b"])
    options.update(kwargs)
    return PerceptualLoss(encoder, **options), encoder


def test_style_loss_zero_at_the_style_and_content_loss_zero_at_the_photo():
    loss, _ = make_loss(tv_weight=0.0)
    style = torch.rand(1, 3, 8, 8)
    loss.set_style([style])
    terms = loss(style, style)
    assert terms.style.item() == pytest.approx(0, abs=1e-10)
    assert terms.content.item() == pytest.approx(0, abs=1e-10)
    other = loss(torch.rand(2, 3, 8, 8), style)
    assert other.style > 0 and other.content > 0


def test_style_loss_matches_formula_with_layer_and_global_weights():
    loss, enc = make_loss(style_weights=[2.0, 0.5], style_weight=3.0, content_weight=0.0)
    style, out = torch.rand(1, 3, 6, 6), torch.rand(1, 3, 6, 6)
    loss.set_style([style])
    terms = loss(out)
    with torch.no_grad():
        expected = {name: 3.0 * w * relative_mse(gram_matrix(getattr(enc, name)(out)), gram_matrix(getattr(enc, name)(style)))
                    for name, w in (("a", 2.0), ("b", 0.5))}
    for name in ("a", "b"):
        assert terms.style_layers[name].item() == pytest.approx(expected[name].item(), rel=1e-5)
    assert terms.total.item() == pytest.approx(sum(v.item() for v in expected.values()), rel=1e-5)


def test_blend_of_two_styles_is_the_weighted_sum():
    s1, s2, out = torch.rand(1, 3, 6, 6), torch.rand(1, 3, 6, 6), torch.rand(1, 3, 6, 6)
    blended, _ = make_loss()
    blended.set_style([s1, s2], [3.0, 1.0])
    singles = []
    for s in (s1, s2):
        single, _ = make_loss()
        single.set_style([s])
        singles.append(single(out).style.item())
    assert blended(out).style.item() == pytest.approx(0.75 * singles[0] + 0.25 * singles[1], rel=1e-5)


def test_style_targets_are_computed_once():
    loss, enc = make_loss()
    loss.set_style([torch.rand(1, 3, 8, 8)])
    calls = enc.calls
    for _ in range(3):
        loss(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
    assert enc.calls == calls + 3 * 2  # one pass for the output, one for the content target, none for the style


def test_gradient_reaches_output_but_not_content():
    loss, _ = make_loss()
    loss.set_style([torch.rand(1, 3, 8, 8)])
    out = torch.rand(1, 3, 8, 8, requires_grad=True)
    content = torch.rand(1, 3, 8, 8, requires_grad=True)
    loss(out, content).total.backward()
    assert out.grad is not None and out.grad.abs().sum() > 0
    assert content.grad is None


@pytest.mark.parametrize("kwargs,blend,match", [
    (dict(style_weights=[1.0]), None, "style_weights"),
    (dict(style_weights=[1.0, -1.0]), None, "≥ 0"),
    ({}, [1.0], "style_blend"),
    ({}, [0.0, 0.0], "not all zero"),
    ({}, [1.0, -0.5], "≥ 0"),
])
def test_bad_weights_are_clear_errors(kwargs, blend, match):
    with pytest.raises(TextureNetsError, match=match):
        loss, _ = make_loss(**kwargs)
        loss.set_style([torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4)], blend)


def test_luminance_layout_loss_sees_where_light_falls_not_how_bright_or_what_colour():
    from texture_nets.core.losses import luminance_layout_loss
    photo = torch.rand(2, 3, 32, 32)
    assert luminance_layout_loss(photo, photo).item() == pytest.approx(0, abs=1e-5)
    dimmer_bluer = photo * torch.tensor([0.2, 0.3, 0.9]).view(1, 3, 1, 1)
    luma = (photo * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    tinted = luma * 0.3 + torch.tensor([0.0, 0.1, 0.4]).view(1, 3, 1, 1)
    assert luminance_layout_loss(tinted, photo).item() == pytest.approx(0, abs=1e-5)  # grey layout, any tint
    assert luminance_layout_loss(1 - photo, photo).item() == pytest.approx(2, abs=1e-5)  # light where dark
    assert 0 < luminance_layout_loss(dimmer_bluer, photo).item() < 0.5  # the luma of other channel weights: close
    # only 8x8-block means count: noise within the blocks changes nothing
    speckled = photo + (torch.rand(2, 3, 32, 32) - 0.5) * 0.5
    blocks = lambda x: torch.nn.functional.avg_pool2d(x, 8)  # noqa: E731
    speckled = speckled - blocks(speckled).repeat_interleave(8, 2).repeat_interleave(8, 3) \
        + blocks(photo).repeat_interleave(8, 2).repeat_interleave(8, 3)
    assert luminance_layout_loss(speckled, photo).item() == pytest.approx(0, abs=1e-5)


def test_the_luminance_term_is_off_by_default_and_counts_in_the_total_when_on():
    photo, output = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32, requires_grad=True)
    plain, _ = make_loss()
    plain.set_style([torch.rand(1, 3, 16, 16)])
    terms = plain(output, photo)
    assert terms.luminance is None and "luminance" not in terms.as_floats()
    weighted, _ = make_loss(luminance_weight=3.0)
    weighted.set_style([torch.rand(1, 3, 16, 16)])
    on = weighted(output, photo)
    assert on.luminance.item() > 0 and on.as_floats()["luminance"] == pytest.approx(on.luminance.item())
    assert on.total.item() == pytest.approx((on.content + on.style + on.tv + on.luminance).item(), rel=1e-6)
    # its gradient moves the output's layout toward the photo's
    from texture_nets.core.losses import luminance_layout_loss
    on.luminance.backward()
    with torch.no_grad():
        stepped = output - 0.02 * output.grad / output.grad.abs().max()
    assert luminance_layout_loss(stepped, photo) < luminance_layout_loss(output, photo)
    assert weighted(output, None).luminance is None  # no photo (texture synthesis): no term
