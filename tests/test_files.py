"""files.atomic_output: the one way the project writes a file (a reader never sees half of one)."""

import os

import pytest

from texture_nets.core import files
from texture_nets.core.errors import TextureNetsError
from texture_nets.core.files import atomic_output


def test_a_finished_block_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "model.pt"
    target.write_bytes(b"old")
    with atomic_output(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".model.pt.") and tmp.suffix == ".tmp"
        tmp.write_bytes(b"new")
        assert target.read_bytes() == b"old"  # nobody sees the new file before it is whole
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


@pytest.mark.parametrize("interruption", [ValueError("boom"), KeyboardInterrupt()])
def test_a_failed_or_interrupted_block_keeps_the_old_file_and_removes_the_temporary(tmp_path, interruption):
    target = tmp_path / "picture.png"
    target.write_bytes(b"the user's picture")
    with pytest.raises(type(interruption)):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise interruption
    assert target.read_bytes() == b"the user's picture"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["picture.png"]


def test_an_os_error_names_the_users_path_not_the_temporary(tmp_path):
    target = tmp_path / "out.mp4"
    with pytest.raises(TextureNetsError) as caught:
        with atomic_output(target):
            raise PermissionError(13, "Permission denied")
    message = str(caught.value)
    assert message == f"cannot write {target} (Permission denied)" and ".tmp" not in message


def test_keep_suffix_ends_in_the_targets_extension_and_folders_are_made(tmp_path):
    target = tmp_path / "new" / "folder" / "clip.mp4"
    with atomic_output(target, keep_suffix=True) as tmp:
        assert tmp.suffix == ".mp4" and tmp.name.endswith(".tmp.mp4")  # FFmpeg picks the format by extension
        tmp.write_bytes(b"frames")
    assert target.read_bytes() == b"frames"


def test_two_writers_of_one_file_get_distinct_temporaries(tmp_path):
    target = tmp_path / "cache.npy"
    with atomic_output(target) as first, atomic_output(target) as second:
        assert first != second
        first.write_bytes(b"1")
        second.write_bytes(b"2")
    assert target.read_bytes() == b"1"  # the outer block finishes last: its file wins, whole


def test_durable_flushes_the_file_to_disk_before_the_rename(tmp_path, monkeypatch):
    target = tmp_path / "run.resume.pt"
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append((os.fstat(fd).st_size, target.exists()))
        real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", fsync)
    with atomic_output(target, durable=True) as tmp:
        tmp.write_bytes(b"progress")
    assert synced == [(len(b"progress"), False)]  # the whole file, before it took the user's name
    with atomic_output(tmp_path / "cache.bin") as tmp:
        tmp.write_bytes(b"x")
    assert len(synced) == 1  # caches are not worth an fsync
