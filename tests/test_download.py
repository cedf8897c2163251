"""`texture-nets download coco` against a local HTTP server (with byte ranges) serving small fake
archives: a whole download, a dropped connection resumed, a corrupt or hostile archive refused with
one line and no file left, --limit reading only the first photos."""

from __future__ import annotations

import hashlib
import io
import re
import stat
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from texture_nets.cli import main
from texture_nets.core.errors import TextureNetsError
from texture_nets.training import download as dl

VAL = "/zips/val2017.zip"
ANNOTATIONS = "/annotations/annotations_trainval2017.zip"
PHOTOS = 12


@dataclass
class Served:
    """What the fake server holds and saw: files by URL path, whether it honours Range, the responses
    to cut short (request number → bytes sent before the connection drops), the requests (path, Range
    header) and the body bytes it sent."""
    files: dict[str, bytes] = field(default_factory=dict)
    ranges: bool = True
    drops: dict[int, int] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    sent: int = 0


def handler_for(served: Served):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            number = len(served.requests)
            served.requests.append((self.path, self.headers.get("Range")))
            data = served.files.get(self.path)
            if data is None:
                self.send_error(404)
                return
            start, end, status = 0, len(data), 200
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
            if match and served.ranges:
                start, status = int(match[1]), 206
                end = min(len(data), int(match[2]) + 1) if match[2] else len(data)
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            self.send_response(status)
            self.send_header("Content-Length", str(end - start))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
            self.end_headers()
            body = data[start:end]
            if number in served.drops:  # the connection drops after so many bytes (HTTP/1.0: it closes now)
                body = body[:served.drops[number]]
            served.sent += len(body)  # counted first: the client may be done before this thread goes on
            self.wfile.write(body)

    return Handler


@pytest.fixture
def server(monkeypatch):
    """(base URL, Served) of an HTTP server on 127.0.0.1, stopped after the test."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr(dl, "RETRY_WAIT_S", 0.0)
    served = Served()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(served))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    httpd.shutdown()
    httpd.server_close()


def photo_bytes(seed: int) -> bytes:
    """A small real JPEG (noise, so it does not compress to nothing)."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(40, 60, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def make_zip(members: dict[str, bytes], folder: str | None = "val2017") -> bytes:
    """A zip laid out like COCO's: a folder entry, then the photos, stored (not compressed)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        if folder:
            zf.writestr(f"{folder}/", b"")
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def photos() -> dict[str, bytes]:
    return {f"val2017/{i:012d}.jpg": photo_bytes(i) for i in range(1, PHOTOS + 1)}


def run(capsys, base_url: str, dest: Path, *flags: str) -> tuple[int, list[str], list[str]]:
    """`texture-nets download coco --split val2017 ...`: exit status, stdout lines, stderr lines
    (the progress bars' carriage-return frames left out)."""
    code = main(["download", "coco", "--split", "val2017", "--dest", str(dest), "--base_url", base_url, *flags])
    out = capsys.readouterr()
    errors = [line for line in out.err.splitlines() if "error" in line]
    return code, out.out.splitlines(), errors


def extracted(dest: Path) -> dict[str, bytes]:
    return {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}


def test_whole_archive_is_downloaded_checked_extracted_and_deleted(server, photos, tmp_path, capsys):
    base, served = server
    served.files[VAL] = make_zip(photos)
    code, out, errors = run(capsys, base, tmp_path / "coco")
    assert code == 0 and not errors
    assert extracted(tmp_path / "coco") == photos  # no archive, no .part, no temporary file left
    assert out[-1] == f"{tmp_path / 'coco' / 'val2017'}: {PHOTOS} files extracted"
    code, out, _ = run(capsys, base, tmp_path / "coco", "--keep_archive")  # again: the photos are kept as they are
    assert code == 0 and out[-1].endswith(f"0 files extracted ({PHOTOS} already there)")
    assert (tmp_path / "coco" / "val2017.zip").read_bytes() == served.files[VAL]


def test_annotations_come_whole_next_to_the_photos(server, photos, tmp_path, capsys):
    base, served = server
    served.files[VAL] = make_zip(photos)
    notes = {"annotations/instances_val2017.json": b'{"images": []}'}
    served.files[ANNOTATIONS] = make_zip(notes, folder="annotations")
    code, out, _ = run(capsys, base, tmp_path / "coco", "--limit", "2", "--annotations")
    assert code == 0 and out[-1] == f"{tmp_path / 'coco' / 'annotations'}: 1 files extracted"
    assert extracted(tmp_path / "coco") == {**dict(list(photos.items())[:2]), **notes}


def test_a_dropped_connection_is_resumed_with_a_range_request(server, photos, tmp_path, capsys):
    base, served = server
    served.files[VAL] = archive = make_zip(photos)
    half = len(archive) // 2
    served.drops[0] = half
    code, _, errors = run(capsys, base, tmp_path / "coco")
    assert code == 0 and not errors
    assert served.requests == [(VAL, None), (VAL, f"bytes={half}-")]
    assert served.sent == len(archive)  # nothing fetched twice
    assert extracted(tmp_path / "coco") == photos


def test_an_interrupted_run_continues_from_its_part_file(server, photos, tmp_path, capsys):
    base, served = server
    served.files[VAL] = archive = make_zip(photos)
    dest = tmp_path / "coco"
    dest.mkdir()
    (dest / "val2017.zip.part").write_bytes(archive[:1000])  # what Ctrl-C left
    assert run(capsys, base, dest)[0] == 0
    assert served.requests == [(VAL, "bytes=1000-")] and served.sent == len(archive) - 1000
    assert extracted(dest) == photos


@pytest.mark.parametrize("case", ["whole_part", "no_ranges"])
def test_a_part_file_that_is_whole_or_cannot_be_continued(server, photos, tmp_path, capsys, case):
    base, served = server
    served.files[VAL] = archive = make_zip(photos)
    dest = tmp_path / "coco"
    dest.mkdir()
    have = len(archive) if case == "whole_part" else 1000  # killed before the rename / a server without ranges
    (dest / "val2017.zip.part").write_bytes(archive[:have])
    served.ranges = case != "no_ranges"
    assert run(capsys, base, dest)[0] == 0 and extracted(dest) == photos
    assert served.requests == [(VAL, f"bytes={have}-")]
    assert served.sent == (0 if case == "whole_part" else len(archive))  # 416 / the whole file again


def test_a_connection_that_keeps_failing_ends_in_one_line_and_keeps_the_part(server, photos, tmp_path, capsys,
                                                                             monkeypatch):
    base, served = server
    served.files[VAL] = archive = make_zip(photos)
    served.drops[0] = 500
    monkeypatch.setattr(dl, "_open", failing_after_first(dl._open))
    code, _, errors = run(capsys, base, tmp_path / "coco")
    assert code == 2 and len(errors) == 1
    assert "run the command again to continue" in errors[0] and errors[0].startswith("texture-nets download: error:")
    assert (tmp_path / "coco" / "val2017.zip.part").read_bytes() == archive[:500]
    assert not (tmp_path / "coco" / "val2017.zip").exists()
    monkeypatch.undo()  # the network is back: the same command finishes the download
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    assert run(capsys, base, tmp_path / "coco")[0] == 0 and extracted(tmp_path / "coco") == photos


def failing_after_first(open_url):
    """_open that works once, then finds the network down."""
    calls = []

    def patched(*args, **kwargs):
        calls.append(args)
        if len(calls) > 1:
            raise ConnectionRefusedError(111, "Connection refused")
        return open_url(*args, **kwargs)
    return patched


def test_a_corrupt_archive_is_refused_and_deleted(server, photos, tmp_path, capsys):
    base, served = server
    archive = bytearray(make_zip(photos))
    payload = photos["val2017/000000000005.jpg"]
    at = bytes(archive).index(payload) + len(payload) // 2
    archive[at] ^= 0xFF  # one flipped byte inside a photo: its CRC-32 no longer matches
    served.files[VAL] = bytes(archive)
    code, out, errors = run(capsys, base, tmp_path / "coco")
    assert code == 2 and len(errors) == 1 and not out
    assert "000000000005.jpg fails its CRC check" in errors[0] and "the download was deleted" in errors[0]
    assert extracted(tmp_path / "coco") == {}  # no archive, no .part, no photo


def test_the_official_size_and_md5_are_checked(server, photos, tmp_path):
    base, served = server
    served.files[VAL] = archive = make_zip(photos)
    right = dl.Archive("zips/val2017.zip", len(archive), hashlib.md5(archive).hexdigest())
    assert dl.download(base + VAL, tmp_path / "a.zip", right).read_bytes() == archive
    wrong_md5 = dl.Archive("zips/val2017.zip", len(archive), "0" * 32)
    with pytest.raises(TextureNetsError, match="MD5 .* the official archive's is 0{32}"):
        dl.download(base + VAL, tmp_path / "b.zip", wrong_md5)
    wrong_size = dl.Archive("zips/val2017.zip", len(archive) + 1, right.md5)
    with pytest.raises(TextureNetsError, match="announces .* bytes, the official archive has"):
        dl.download(base + VAL, tmp_path / "c.zip", wrong_size)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip"]


@pytest.mark.parametrize("name", ["../evil.jpg", "/tmp/evil.jpg", "val2017/../../evil.jpg", "C:/evil.jpg",
                                  "val2017\\..\\..\\evil.jpg", "link"])
@pytest.mark.parametrize("limit", [[], ["--limit", "20"]])
def test_a_hostile_archive_is_refused_before_anything_is_written(server, photos, tmp_path, capsys, name, limit):
    base, served = server
    buffer = io.BytesIO(make_zip(photos))
    with zipfile.ZipFile(buffer, "a") as zf:
        info = zipfile.ZipInfo(name)
        if name == "link":  # a symbolic link to /etc/passwd
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, b"/etc/passwd" if name == "link" else b"gotcha")
    served.files[VAL] = buffer.getvalue()
    code, out, errors = run(capsys, base, tmp_path / "coco", *limit)
    assert code == 2 and len(errors) == 1 and "refusing the archive" in errors[0]
    assert not list((tmp_path / "coco").rglob("*.jpg")) and not list(tmp_path.rglob("evil.jpg"))
    assert not list((tmp_path / "coco").rglob("*.zip*"))  # the hostile download is not kept under any name


def test_limit_reads_only_the_first_photos(server, photos, tmp_path, capsys, monkeypatch):
    base, served = server
    served.files[VAL] = archive = make_zip(photos)
    monkeypatch.setattr(dl, "READ_AHEAD", 4096)  # the real 8 MB would take the whole small archive at once
    code, out, _ = run(capsys, base, tmp_path / "coco", "--limit", "3")
    first = dict(list(photos.items())[:3])
    assert code == 0 and extracted(tmp_path / "coco") == first  # no archive written either
    assert out[-1] == f"{tmp_path / 'coco' / 'val2017'}: 3 files extracted"
    assert served.sent < len(archive) / 2 and all(r is not None for _, r in served.requests)
    code, out, _ = run(capsys, base, tmp_path / "coco", "--limit", "5")  # more: only the new ones are read
    assert code == 0 and out[-1].endswith("2 files extracted (3 already there)")
    assert extracted(tmp_path / "coco") == dict(list(photos.items())[:5])


def test_limit_survives_a_dropped_connection(server, photos, tmp_path, capsys, monkeypatch):
    base, served = server
    served.files[VAL] = make_zip(photos)
    monkeypatch.setattr(dl, "READ_AHEAD", 4096)
    served.drops[1] = 10  # the first ranged read after the size probe is cut: it is asked again
    code, _, errors = run(capsys, base, tmp_path / "coco", "--limit", "4")
    assert code == 0 and not errors and extracted(tmp_path / "coco") == dict(list(photos.items())[:4])
    assert served.requests[1] == served.requests[2]


def test_limit_needs_a_server_that_serves_ranges(server, photos, tmp_path, capsys):
    base, served = server
    served.files[VAL] = make_zip(photos)
    served.ranges = False
    code, out, errors = run(capsys, base, tmp_path / "coco", "--limit", "3")
    assert code == 2 and len(errors) == 1
    assert "does not serve byte ranges" in errors[0] and "without --limit" in errors[0]
    assert not (tmp_path / "coco").exists() or extracted(tmp_path / "coco") == {}


def test_a_missing_archive_and_bad_options_are_one_line(server, tmp_path, capsys):
    base, _ = server
    code, _, errors = run(capsys, base, tmp_path / "coco")
    assert code == 2 and len(errors) == 1 and "HTTP 404" in errors[0]
    code, _, errors = run(capsys, base, tmp_path / "coco", "--limit", "0")
    assert code == 2 and "--limit must be at least 1" in errors[0]
    assert not (tmp_path / "coco" / "val2017.zip").exists()


def test_the_official_archives_are_described():
    assert dl.COCO_ARCHIVES["train2017"].size == 19_336_861_798 and dl.COCO_ARCHIVES["val2017"].size == 815_585_330
    assert all(re.fullmatch(r"[0-9a-f]{32}", a.md5) for a in dl.COCO_ARCHIVES.values())
    with pytest.raises(SystemExit) as exit_:
        main(["download", "--help"])
    assert exit_.value.code == 0


def test_a_file_of_the_users_where_a_photo_goes_is_never_replaced(server, photos, tmp_path, capsys):
    base, served = server
    served.files[VAL] = make_zip(photos)
    mine = tmp_path / "coco" / "val2017" / "000000000003.jpg"
    mine.parent.mkdir(parents=True)
    original = photos["val2017/000000000003.jpg"]
    mine.write_bytes(bytes(reversed(original)))  # the same size, other content
    code, _, errors = run(capsys, base, tmp_path / "coco")
    assert code == 2 and len(errors) == 1 and "000000000003.jpg exists and is not the archive's" in errors[0]
    assert mine.read_bytes() == bytes(reversed(original))
    mine.write_bytes(original)  # the archive's own bytes: kept, and the rest extracted
    code, _, errors = run(capsys, base, tmp_path / "coco")
    assert code == 0 and extracted(tmp_path / "coco") == photos


def test_a_file_of_the_users_named_like_the_archive_is_never_replaced(server, photos, tmp_path, capsys):
    base, served = server
    served.files[VAL] = make_zip(photos)
    mine = tmp_path / "coco" / "val2017.zip"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"my own notes, not a zip" * 10)
    code, _, errors = run(capsys, base, tmp_path / "coco", "--keep_archive")
    assert code == 2 and len(errors) == 1 and "val2017.zip exists and is not the archive" in errors[0]
    assert mine.read_bytes() == b"my own notes, not a zip" * 10


def test_a_zip_bomb_is_refused_before_anything_is_extracted(server, tmp_path, capsys):
    base, served = server
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("val2017/000000000001.jpg", photo_bytes(1))
        zf.writestr("val2017/000000000002.jpg", bytes(8 << 20))  # 8 MB of zeros: a few KB compressed
    served.files[VAL] = buffer.getvalue()
    code, _, errors = run(capsys, base, tmp_path / "coco", "--limit", "5")
    assert code == 2 and len(errors) == 1 and "would expand" in errors[0]
    assert not (tmp_path / "coco").exists() or extracted(tmp_path / "coco") == {}


def test_an_archive_that_asks_to_read_more_than_is_plausible_is_refused(server, photos, tmp_path, capsys,
                                                                         monkeypatch):
    """zipfile reads the central directory in one read of the size the archive claims: such a read
    over MAX_RANGED_READ (256 MB; 64 bytes here, for a small archive) is refused in one line."""
    base, served = server
    served.files[VAL] = make_zip(photos)
    monkeypatch.setattr(dl, "MAX_RANGED_READ", 64)
    code, _, errors = run(capsys, base, tmp_path / "coco", "--limit", "3")
    assert code == 2 and len(errors) == 1 and "a damaged or hostile archive" in errors[0]
