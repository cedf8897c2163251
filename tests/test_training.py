import signal

import pytest
import torch

from texture_nets import TextureNetsError, load_checkpoint, load_generator
from texture_nets.core.checkpoint import total_steps
from texture_nets.training.config import make_config
from texture_nets.training.loop import Trainer, interrupts_held
from texture_nets.training.run import load_resume, resume_path, run_training

from .conftest import SHARED_COCO, SHARED_STYLES, SHARED_VGG, tiny_overrides, whole_and_resumed_runs


def quiet(*_):
    pass


def test_short_training_lowers_the_validation_loss(photos_dir, style_path, tmp_path):
    events = []
    config = make_config({}, tiny_overrides(photos_dir, style_path, tmp_path / "ck", num_iterations=40,
                                            val_every=40, learning_rate=1e-2, image_size=32))
    run_training(config, on_event=events.append, log=quiet)
    first, last = events[0].losses["total"], events[-1].val_losses["total"]
    assert last < 0.7 * first
    assert events[-1].step == 40 and set(events[-1].losses) >= {"content", "style", "tv", "style/relu1_1"}


def test_files_written_and_checkpoint_contents(photos_dir, style_path, tmp_path):
    config = make_config({}, tiny_overrides(photos_dir, style_path, tmp_path / "ck", name="stripes"))
    result = run_training(config, log=quiet)
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["stripes.pt", "stripes.resume.pt", "stripes.toml"]
    checkpoint = load_checkpoint(result.checkpoint)
    assert "resume" not in checkpoint and checkpoint["step"] == 6
    assert checkpoint["train"]["image_size"] == 32 and checkpoint["style"]["name"] == "stripes"
    assert checkpoint["style"]["images"][0]["name"] == "stripes.png"
    assert len(checkpoint["style"]["images"][0]["sha256"]) == 64
    assert set(checkpoint["losses"]) >= {"total", "content", "style"}
    assert "optimizer" in load_checkpoint(result.resume_checkpoint)["resume"]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_interrupt_then_resume_equals_an_uninterrupted_run(photos_dir, style_path, tmp_path, precision):
    overrides = tiny_overrides(photos_dir, style_path, tmp_path / "a", num_iterations=6, checkpoint_every=0,
                               num_workers=0, precision=precision)
    whole, resumed, _ = whole_and_resumed_runs(overrides, tmp_path)
    a, b = load_generator(whole.checkpoint).state_dict(), load_generator(resumed.checkpoint).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(v.dtype == torch.float32 for v in b.values() if v.is_floating_point())  # weights stay fp32
    assert load_checkpoint(resumed.checkpoint)["step"] == 6


def test_a_run_resumes_in_the_photo_order_it_began_with(photos_dir, style_path, tmp_path, monkeypatch):
    """A resume file from before checkpoints recorded their data order (no "data_order": the order
    EPOCH_ORDER 1, seed + epoch) continues in that order, exactly as if never interrupted."""
    import texture_nets.training.run as training
    overrides = tiny_overrides(photos_dir, style_path, tmp_path, seed=3, num_iterations=8, num_val=0, val_every=0)
    monkeypatch.setattr(training, "EPOCH_ORDER", 1)  # as texture_nets trained before orders were recorded
    whole = run_training(make_config({}, {**overrides, "checkpoint_dir": str(tmp_path / "whole")}), log=quiet)
    parted = make_config({}, {**overrides, "checkpoint_dir": str(tmp_path / "parted")})

    def interrupt(event):
        if event.step == 3:  # 8 photos, batch 2: the next epoch starts at step 4
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        run_training(parted, on_event=interrupt, log=quiet)
    monkeypatch.undo()
    saved = load_resume(resume_path(parted))
    assert saved.pop("data_order") == 1  # recorded; taken out: a file written before the field existed
    resumed = run_training(parted, resume=saved, log=quiet)
    a, b = load_generator(whole.checkpoint).state_dict(), load_generator(resumed.checkpoint).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert load_checkpoint(resumed.checkpoint)["data_order"] == 1
    assert load_checkpoint(whole.checkpoint)["data_order"] == 1


def test_resume_needs_a_resumable_checkpoint(photos_dir, style_path, tmp_path):
    result = run_training(make_config({}, tiny_overrides(photos_dir, style_path, tmp_path)), log=quiet)
    with pytest.raises(TextureNetsError, match="no optimizer state"):
        load_resume(result.checkpoint)


def test_unreadable_photos_are_skipped_with_one_warning_each_and_counted(photos_dir, style_path, tmp_path):
    for name in ("broken1.jpg", "broken2.png"):
        (photos_dir / "a" / name).write_bytes(b"definitely not an image")
    logs = []
    config = make_config({}, tiny_overrides(photos_dir, style_path, tmp_path, num_iterations=8, batch_size=4,
                                            num_val=0, val_every=0))
    with pytest.warns(UserWarning, match="skipping unreadable image") as record:
        result = run_training(config, log=logs.append)
    warned = [str(w.message) for w in record if "skipping" in str(w.message)]
    assert len(warned) == len(set(warned)) == 2
    assert sorted(p.split("/")[-1] for p in result.skipped) == ["broken1.jpg", "broken2.png"]
    assert any("2 unreadable image(s)" in line for line in logs)


def test_texture_mode_learns_a_texture_from_noise(style_path, tmp_path):
    events = []
    config = make_config({}, tiny_overrides(None, style_path, tmp_path, data_dir="", mode="texture",
                                            num_iterations=30, val_every=30, learning_rate=1e-2))
    result = run_training(config, on_event=events.append, log=quiet)
    assert events[-1].val_losses["style"] < 0.7 * events[0].losses["style"]
    assert events[-1].losses["content"] == 0.0
    net = load_generator(result.checkpoint)
    assert net.config.texture_only
    assert net(size=(40, 24), generator=torch.Generator().manual_seed(0)).shape == (1, 3, 40, 24)


def test_style_image_too_small_is_refused(photos_dir, tmp_path):
    from PIL import Image
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (8, 8)).save(tiny)
    with pytest.raises(TextureNetsError, match="tiny.png"):
        run_training(make_config({}, tiny_overrides(photos_dir, tiny, tmp_path)), log=quiet)


@pytest.mark.shared
def test_real_vgg_and_coco_training_moves_toward_the_style(tmp_path):
    """A few steps with the real weights and photos lower the style loss on held-out photos."""
    events = []
    config = make_config({}, dict(data_dir=str(SHARED_COCO / "train2017"), texture=[str(SHARED_STYLES / "mosaic.jpg")],
                                  vgg_weights=str(SHARED_VGG), image_size=64, style_size=128, batch_size=2,
                                  num_iterations=12, val_every=12, log_every=1, num_workers=0, learning_rate=1e-2,
                                  num_scales=4, checkpoint_dir=str(tmp_path), device="cpu"))
    run_training(config, on_event=events.append, log=quiet)
    assert events[-1].val_losses["style"] < events[0].losses["style"]


def test_a_plain_checkpoint_continues_its_run_with_a_fresh_optimizer(photos_dir, style_path, tmp_path):
    """Another machine has the committed <name>.pt but not the resume file: --resume <name>.pt
    continues at its step (the schedule and data order go on), saying the optimizer restarts."""
    overrides = tiny_overrides(photos_dir, style_path, tmp_path / "a", num_iterations=4, checkpoint_every=0)
    first = run_training(make_config({}, overrides), log=quiet)
    logs = []
    plain = load_resume(first.checkpoint, log=logs.append)
    assert plain["step"] == 4 and plain["resume"] == {} and "fresh optimizer" in logs[0]
    longer = make_config({}, {**overrides, "num_iterations": 7})
    events = []
    run_training(longer, resume=plain, on_event=events.append, log=quiet)
    assert events[0].step == 5 and events[-1].step == 7
    assert load_checkpoint(first.checkpoint)["step"] == 7


def test_init_from_fine_tunes_from_a_checkpoints_weights(photos_dir, style_path, tmp_path):
    base = run_training(make_config({}, tiny_overrides(photos_dir, style_path, tmp_path / "a")), log=quiet)
    logs = []
    tuned_config = make_config({}, tiny_overrides(photos_dir, style_path, tmp_path / "b", num_iterations=1,
                                                  init_from=str(base.checkpoint), learning_rate=1e-9))
    tuned = run_training(tuned_config, log=logs.append)
    a, b = load_generator(base.checkpoint).state_dict(), load_generator(tuned.checkpoint).state_dict()
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)  # one step at lr 1e-9
    assert any("starting from the weights" in line for line in logs)
    assert load_checkpoint(tuned.checkpoint)["step"] == 1
    other = make_config({}, tiny_overrides(photos_dir, style_path, tmp_path / "c", init_from=str(base.checkpoint),
                                           channels=6))
    with pytest.raises(TextureNetsError, match="channels=4 \\(asked 6\\)"):
        run_training(other, log=quiet)


def test_a_fine_tuned_checkpoint_counts_the_steps_behind_its_starting_weights(photos_dir, style_path, tmp_path):
    """Its own `step` drives its schedule; `steps_before` carries the earlier phases' steps through a
    chain of init_from runs and through a resume, so `total_steps` says how long the style trained."""
    base = run_training(make_config({}, tiny_overrides(photos_dir, style_path, tmp_path / "a")), log=quiet)
    second = run_training(make_config({}, tiny_overrides(photos_dir, style_path, tmp_path / "b", num_iterations=2,
                                                         init_from=str(base.checkpoint))), log=quiet)
    third_config = make_config({}, tiny_overrides(photos_dir, style_path, tmp_path / "c", num_iterations=3,
                                                  init_from=str(second.checkpoint)))
    third = run_training(third_config, log=quiet)
    saved = [load_checkpoint(run.checkpoint) for run in (base, second, third)]
    assert [(c["step"], c["steps_before"], total_steps(c)) for c in saved] == [(6, 0, 6), (2, 6, 8), (3, 8, 11)]
    resume = load_resume(resume_path(third_config), log=quiet)
    longer = make_config({}, {**third_config.to_dict(), "num_iterations": 4})
    assert load_checkpoint(run_training(longer, resume=resume, log=quiet).checkpoint)["steps_before"] == 8
    resume.pop("steps_before")  # a resume file written before the field existed: counted from init_from
    again = make_config({}, {**third_config.to_dict(), "num_iterations": 5, "checkpoint_dir": str(tmp_path / "d")})
    assert total_steps(load_checkpoint(run_training(again, resume=resume, log=quiet).checkpoint)) == 13


def test_weights_that_became_nan_between_reports_are_never_saved(photos_dir, style_path, tmp_path, monkeypatch):
    """The loss reaches the host only on reporting steps; a checkpoint between them checks the weights."""
    real_step = Trainer.step

    def poisoned(self, step, images):
        terms = real_step(self, step, images)
        if step == 2:  # the third step: its update turns a weight into NaN
            with torch.no_grad():
                next(self.generator.parameters()).view(-1)[0] = float("nan")
        return terms
    monkeypatch.setattr(Trainer, "step", poisoned)
    config = make_config({}, tiny_overrides(photos_dir, style_path, tmp_path / "ck", num_iterations=6,
                                            checkpoint_every=2, val_every=0, log_every=100))
    with pytest.raises(TextureNetsError, match="NaN or infinite by step 4: not saved"):
        run_training(config, log=quiet)
    for name in ("stripes.pt", "stripes.resume.pt"):  # step 2's good checkpoints are kept
        saved = load_checkpoint(tmp_path / "ck" / name)
        assert saved["step"] == 2 and all(torch.isfinite(v).all() for v in saved["state_dict"].values())


def test_an_interrupt_is_held_until_the_step_and_its_count_are_done():
    # Ctrl-C as a terminal delivers it, even where the tests run with SIGINT ignored (nohup, a background job)
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        done = []
        with pytest.raises(KeyboardInterrupt):
            with interrupts_held():
                signal.raise_signal(signal.SIGINT)  # Ctrl-C in the middle of Adam's update
                done.append("weights updated")
                done.append("step counted")
        assert done == ["weights updated", "step counted"]  # then the interrupt, at the boundary
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        with interrupts_held():  # nothing held: nothing delivered
            done.append("quiet step")
        assert done[-1] == "quiet step"
    finally:
        signal.signal(signal.SIGINT, outer)
