"""Fetch the COCO 2017 photos (and optionally their annotations) to train on.

The official archives (http://images.cocodataset.org; COCO images are under the Flickr terms of use,
the annotations CC BY 4.0):

    zips/train2017.zip                      19,336,861,798 bytes (18 GB), 118,287 photos
    zips/val2017.zip                           815,585,330 bytes (778 MB), 5,000 photos
    annotations/annotations_trainval2017.zip   252,907,541 bytes (241 MB)

A whole archive is downloaded to `<name>.part` with a progress bar, continued with an HTTP Range
request after a dropped connection (automatically, and by running the command again), checked, and
only then renamed to `<name>`: a size that differs from the Content-Length announced is refused, and
so is an archive whose MD5 differs from the one below (COCO publishes no checksums: these are the S3
ETags of the official files, as listed by several dataset tools, e.g. PaddleDetection) or, for an
archive of unknown checksum (another --base_url), one whose own CRC-32s do not match
(zipfile.testzip). A corrupt `.part` is deleted, so the next run starts afresh.

`limit` extracts only the first N photos of an image archive, reading just those members (and the
archive's central directory, about 10 MB for train2017) from the server with HTTP Range requests:
`--limit 500` fetches about 90 MB, not 18 GB. Each member's CRC-32 is checked as it is extracted;
the archive's MD5 cannot be.

Extraction refuses a hostile archive (absolute paths, `..`, drive letters, links) before writing
anything, writes each file atomically (temporary name, then rename) and skips files already there,
so an interrupted extraction continues where it stopped.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import stat
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

from tqdm import tqdm

from texture_nets.core.errors import TextureNetsError
from texture_nets.core.files import atomic_output
from texture_nets.core.images import IMAGE_EXTENSIONS
from texture_nets.core.version import __version__

OFFICIAL_BASE_URL = "http://images.cocodataset.org"
CHUNK = 1 << 20  # bytes read from the network at a time
READ_AHEAD = 8 << 20  # bytes fetched per ranged request when reading members of a remote archive
TIMEOUT_S = 60.0  # seconds without data before a connection counts as dropped
ATTEMPTS = 3  # consecutive tries without progress before giving up
RETRY_WAIT_S = 2.0  # seconds before the n-th consecutive retry without progress: n times this
# What goes wrong with a connection (URLError and HTTPError are OSErrors; HTTPError is handled first).
CONNECTION_ERRORS = (OSError, http.client.HTTPException)
MAX_RANGED_READ = 256 << 20  # bytes one read of a remote archive may ask for (train2017's index: ~10 MB)
MAX_EXPANSION = 200  # a member may expand at most this many times its compressed size (photos: ~1)


@dataclass(frozen=True)
class Archive:
    """One official COCO archive: where it lies under the base URL, its size and MD5."""
    path: str
    size: int
    md5: str


COCO_ARCHIVES = {
    "train2017": Archive("zips/train2017.zip", 19_336_861_798, "cced6f7f71b7629ddf16f17bbcfab6b2"),
    "val2017": Archive("zips/val2017.zip", 815_585_330, "442b8da7639aecaf257c1dceb8ba8c80"),
    "annotations": Archive("annotations/annotations_trainval2017.zip", 252_907_541, "f4bbac642086de4f52a3fdda2de5fa2c"),
}


@dataclass(frozen=True)
class Fetched:
    """What one archive gave: the folder its files went to and how many files were extracted now."""
    folder: Path
    extracted: int
    present: int  # files that were already there


def fetch_coco(split: str, dest: str | os.PathLike, *, limit: int | None = None, annotations: bool = False,
               base_url: str = OFFICIAL_BASE_URL, keep_archive: bool = False,
               log: Callable[[str], None] = print) -> list[Fetched]:
    """Download and extract `split`'s photos (the first `limit` only, by ranged reads) and, with
    `annotations`, annotations_trainval2017.zip, into `dest`; see the module docstring."""
    if split not in ("train2017", "val2017"):
        raise TextureNetsError(f"unknown COCO split {split!r}: train2017 or val2017")
    if limit is not None and limit < 1:
        raise TextureNetsError(f"--limit must be at least 1, got {limit}")
    dest = Path(dest)
    names = [split] + (["annotations"] if annotations else [])
    results = []
    for name in names:
        archive = COCO_ARCHIVES[name]
        checked = archive if base_url.rstrip("/") == OFFICIAL_BASE_URL else None  # others: the zip's own CRCs
        url = f"{base_url.rstrip('/')}/{archive.path}"
        if limit is not None and name != "annotations":
            results.append(extract_remote(url, dest, limit, checked))
        else:
            results.append(fetch_and_extract(url, dest, checked, keep_archive, log))
    return results


def fetch_and_extract(url: str, dest: Path, expected: Archive | None, keep_archive: bool,
                      log: Callable[[str], None]) -> Fetched:
    """Download a whole archive into `dest`, extract all of it, and delete it unless `keep_archive`."""
    archive = download(url, dest / PurePosixPath(url).name, expected)
    with _open_zip(archive) as zf:
        members = safe_members(zf, str(archive))  # checked before it got its name: this is cheap
        result = extract(zf, [m for m in members if not m.is_dir()], dest)
    if not keep_archive:
        archive.unlink()
        log(f"deleted {archive} after extracting it (--keep_archive keeps it)")
    return result


def extract_remote(url: str, dest: Path, limit: int, expected: Archive | None) -> Fetched:
    """Extract the first `limit` photos of a remote archive, reading only them over HTTP ranges."""
    with RangedFile(url) as remote:
        if expected is not None and remote.size != expected.size:
            raise TextureNetsError(f"{url}: the server has {remote.size} bytes, the official archive "
                                   f"{expected.size}: not the archive expected")
        with _open_zip(remote, url) as zf:
            members = safe_members(zf, url)
            photos = [m for m in members if not m.is_dir() and PurePosixPath(m.filename).suffix.lower()
                      in IMAGE_EXTENSIONS][:limit]
            return extract(zf, photos, dest)


# --- downloading a whole file ------------------------------------------------------------------------


def download(url: str, target: Path, expected: Archive | None = None) -> Path:
    """`target`, downloaded from `url` through `<target>.part` (continued where an earlier run left it)
    and checked before it gets its name. An existing `target` is checked again (MD5 of the official
    archives, else the archive's own CRC-32s): a file of that name that is not the archive is the
    user's, and is never replaced."""
    if target.exists() or target.is_symlink():
        try:
            check_archive(target, expected)
        except TextureNetsError as exc:
            raise TextureNetsError(f"{target} exists and is not the archive from {url} ({exc}): move it away or "
                                   f"choose another --dest; this command never replaces a file it did not write") from exc
        return target
    part = target.with_name(f"{target.name}.part")
    target.parent.mkdir(parents=True, exist_ok=True)
    _download_part(url, part, expected)
    try:
        check_archive(part, expected)
    except TextureNetsError as exc:
        part.unlink(missing_ok=True)
        raise TextureNetsError(f"{url}: {exc} (the download was deleted)") from exc
    os.replace(part, target)
    return target


def _download_part(url: str, part: Path, expected: Archive | None) -> None:
    """Fill `part` with the whole file, resuming after dropped connections while they make progress."""
    failures = 0
    with tqdm(desc=part.name.removesuffix(".part"), unit="B", unit_scale=True, unit_divisor=1024,
              dynamic_ncols=True) as bar:
        while True:
            have = _size(part)
            try:
                return _fetch_rest(url, part, expected, bar)
            except CONNECTION_ERRORS as exc:
                failures = 0 if _size(part) > have else failures + 1
                if failures >= ATTEMPTS:
                    raise TextureNetsError(f"cannot download {url} ({_reason(exc)}); {part} keeps "
                                           f"{_size(part) / 2**20:.0f} MB: run the command again to continue") from exc
                bar.write(f"connection lost ({_reason(exc)}): continuing from byte {_size(part)}")
                time.sleep(RETRY_WAIT_S * failures)


def _fetch_rest(url: str, part: Path, expected: Archive | None, bar) -> None:
    """One request for the bytes `part` lacks (all of them when the server ignores the range)."""
    have = _size(part)
    try:
        response = _open(url, have)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have and _range_total(exc.headers.get("Content-Range")) == have:
            return  # the part is already whole
        if exc.code == 416:  # longer than the file: not a part of it
            part.unlink()
            raise ConnectionError(f"{part.name} does not fit the file on the server") from exc
        raise TextureNetsError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    with response:
        start, total = _span(url, response, have)
        if expected is not None and total != expected.size:
            raise TextureNetsError(f"{url}: the server announces {total} bytes, the official archive has "
                                   f"{expected.size}: not the archive expected")
        _check_space(part.parent, total - start, f"to download {url}")
        bar.reset(total=total)
        bar.update(start)
        with open(part, "ab" if start else "wb") as handle:
            for chunk in iter(lambda: response.read(CHUNK), b""):
                handle.write(chunk)
                bar.update(len(chunk))
    size = _size(part)
    if size < total:
        raise ConnectionError(f"the connection closed after {size} of {total} bytes")
    if size > total:
        part.unlink()
        raise TextureNetsError(f"{url}: received {size} bytes, {total} announced")


def _open(url: str, start: int = 0, end: int | None = None):
    """urlopen with a Range header from `start` (to `end`, exclusive) when it is not the whole file."""
    headers = {"User-Agent": f"texture_nets/{__version__}"}
    if start or end is not None:
        headers["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)


def _span(url: str, response, start: int) -> tuple[int, int]:
    """(first byte sent, whole file's size) of a response to a request from byte `start`."""
    if response.status == 206:
        match = re.fullmatch(r"bytes (\d+)-\d+/(\d+)", response.headers.get("Content-Range", "").strip())
        if match is None or int(match.group(1)) != start:
            raise TextureNetsError(f"{url}: the server answered another byte range than asked "
                                   f"({response.headers.get('Content-Range')!r})")
        return start, int(match.group(2))
    length = response.headers.get("Content-Length")
    if length is None or not length.isdigit():
        raise TextureNetsError(f"{url}: the server does not say how large the file is (no Content-Length)")
    return 0, int(length)  # 200: the whole file, from its first byte


def _range_total(content_range: str | None) -> int | None:
    """The file size in a 416 answer's 'bytes */SIZE'."""
    match = re.fullmatch(r"bytes \*/(\d+)", (content_range or "").strip())
    return int(match.group(1)) if match else None


def _size(path: Path) -> int:
    """A file's size; 0 when it is not there."""
    return path.stat().st_size if path.exists() else 0


def _reason(exc: BaseException) -> str:
    """An exception as a short reason, its type when it has no message."""
    return str(exc) or type(exc).__name__


def _check_space(folder: Path, need: int, doing: str) -> None:
    """Refuse to start writing `need` bytes into `folder` when the disk has less free."""
    free = shutil.disk_usage(folder).free
    if need > free:
        raise TextureNetsError(f"{doing} needs {need / 2**30:.1f} GB, {folder} has {free / 2**30:.1f} GB free")


# --- checking and extracting an archive --------------------------------------------------------------


def check_archive(path: Path, expected: Archive | None) -> None:
    """The official archive's size and MD5 when it is known, else the zip's own CRC-32s (all members);
    then the members' names (see safe_members)."""
    if expected is not None:
        if path.stat().st_size != expected.size:
            raise TextureNetsError(f"{path.stat().st_size} bytes, the official archive has {expected.size}")
        digest = file_md5(path)
        if digest != expected.md5:
            raise TextureNetsError(f"MD5 {digest}, the official archive's is {expected.md5}")
    try:
        with zipfile.ZipFile(path) as zf:
            bad = None if expected is not None else zf.testzip()
            safe_members(zf)
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
        raise TextureNetsError(f"not a readable zip archive ({_reason(exc)})") from exc
    if bad is not None:
        raise TextureNetsError(f"damaged archive: {bad} fails its CRC check")


def file_md5(path: Path) -> str:
    """The MD5 of a file, read in chunks, with a progress bar (18 GB take a minute or two)."""
    digest = hashlib.md5()
    with open(path, "rb") as handle, tqdm(total=path.stat().st_size, desc=f"checking {path.name}", unit="B",
                                           unit_scale=True, unit_divisor=1024, dynamic_ncols=True) as bar:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def _open_zip(file, where: str | None = None) -> zipfile.ZipFile:
    """zipfile.ZipFile, with a damaged archive as a TextureNetsError."""
    try:
        return zipfile.ZipFile(file)
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise TextureNetsError(f"{where or file}: not a readable zip archive ({_reason(exc)})") from exc


def safe_members(zf: zipfile.ZipFile, where: str | None = None) -> list[zipfile.ZipInfo]:
    """The archive's members, after refusing the whole archive if any would land outside the
    destination (absolute path, drive letter, '..', backslashes) or is a link."""
    members = zf.infolist()
    for info in members:
        name = info.filename
        parts = PurePosixPath(name).parts
        is_link = stat.S_ISLNK(info.external_attr >> 16)
        if (not name or name.startswith("/") or "\\" in name or re.match(r"[A-Za-z]:", name) or ".." in parts
                or is_link):
            raise TextureNetsError(f"{where + ': ' if where else ''}refusing the archive: member {name!r} "
                                   f"{'is a link' if is_link else 'would be written outside the destination'}")
    return members


def extract(zf: zipfile.ZipFile, members: list[zipfile.ZipInfo], dest: Path) -> Fetched:
    """Extract `members` (files) into `dest`, each atomically; a file already there (written whole by an
    earlier run) is kept. A member whose CRC-32 fails is a TextureNetsError, and leaves no file."""
    check_expansion(members)
    todo = [m for m in members if not _is_extracted(dest / m.filename, m)]
    dest.mkdir(parents=True, exist_ok=True)
    _check_space(dest, sum(m.file_size for m in todo), f"extracting {len(todo)} files")
    for info in tqdm(todo, desc=f"extracting into {dest}", unit="file", dynamic_ncols=True, disable=not todo):
        extract_member(zf, info, dest / info.filename)
    folders = {PurePosixPath(m.filename).parts[0] for m in members}
    folder = dest / folders.pop() if len(folders) == 1 else dest
    return Fetched(folder, len(todo), len(members) - len(todo))


def check_expansion(members: list[zipfile.ZipInfo]) -> None:
    """Refuse an archive with a member that claims to expand more than MAX_EXPANSION times (a zip
    bomb: photos and annotations expand far less), before anything is extracted."""
    for info in members:
        if info.file_size > MAX_EXPANSION * max(info.compress_size, 1) and info.file_size > CHUNK:
            raise TextureNetsError(f"refusing the archive: member {info.filename!r} would expand from "
                                   f"{info.compress_size:,} to {info.file_size:,} bytes (a zip bomb?)")


def _is_extracted(path: Path, info: zipfile.ZipInfo) -> bool:
    """Whether an earlier run wrote this member: a file of its size and CRC-32 (files are only ever
    named once written whole). Any other file there is not this command's to replace: refused."""
    if not path.exists() and not path.is_symlink():
        return False
    if path.is_file() and not path.is_symlink() and path.stat().st_size == info.file_size and \
            _file_crc32(path) == info.CRC:
        return True
    raise TextureNetsError(f"{path} exists and is not the archive's {info.filename} (another file of yours?): "
                           f"move it away or choose another --dest; this command never replaces a file it "
                           f"did not write")


def _file_crc32(path: Path) -> int:
    """The CRC-32 of a file's bytes, as zip archives record it."""
    crc = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            crc = zlib.crc32(chunk, crc)
    return crc


def extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> None:
    """Write one member to `target` through a temporary file (its CRC-32 checked by zipfile)."""
    try:
        with atomic_output(target) as tmp, zf.open(info) as source, open(tmp, "xb") as handle:
            shutil.copyfileobj(source, handle, CHUNK)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise TextureNetsError(f"damaged archive: {info.filename} ({_reason(exc)})") from exc


# --- reading a remote archive by byte ranges ---------------------------------------------------------


class RangedFile:
    """A read-only, seekable file over HTTP Range requests (what zipfile needs to read some members of a
    remote archive), fetching READ_AHEAD bytes at a time and retrying dropped connections."""

    def __init__(self, url: str):
        self.url, self.pos = url, 0
        self.buffer, self.buffer_start = b"", 0
        self.size = self._probe()

    def _probe(self) -> int:
        """The file's size, from a one-byte ranged request (refused when the server ignores ranges)."""
        try:
            with _open(self.url, 0, 1) as response:
                if response.status != 206:
                    raise TextureNetsError(f"{self.url}: the server does not serve byte ranges, which --limit "
                                           f"needs: run without --limit to download the whole archive")
                return _span(self.url, response, 0)[1]
        except urllib.error.HTTPError as exc:
            raise TextureNetsError(f"{self.url}: HTTP {exc.code} {exc.reason}") from exc
        except CONNECTION_ERRORS as exc:
            raise TextureNetsError(f"cannot reach {self.url} ({_reason(exc)})") from exc

    def __enter__(self) -> "RangedFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.buffer = b""

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.pos, os.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self.pos = base + offset
        return self.pos

    def read(self, n: int = -1) -> bytes:
        """Up to `n` bytes (all the rest: -1) from the position, from the read-ahead buffer when there.
        A read of more than MAX_RANGED_READ is refused: only an archive's own claims (a central
        directory of terabytes) ask for that, and the bytes would be held in memory."""
        end = self.size if n is None or n < 0 else min(self.size, self.pos + n)
        if end - self.pos > MAX_RANGED_READ:
            raise TextureNetsError(f"{self.url}: the archive asks to read {end - self.pos:,} bytes at once (more "
                                   f"than {MAX_RANGED_READ:,}): a damaged or hostile archive")
        if end <= self.pos:
            return b""
        if not self.buffer_start <= self.pos or end > self.buffer_start + len(self.buffer):
            self.buffer_start = self.pos
            self.buffer = self._fetch(self.pos, min(self.size, max(end, self.pos + READ_AHEAD)))
        data = self.buffer[self.pos - self.buffer_start:end - self.buffer_start]
        self.pos += len(data)
        return data

    def _fetch(self, start: int, end: int) -> bytes:
        """Bytes start..end-1, retried when the connection drops."""
        error: BaseException | None = None
        for attempt in range(ATTEMPTS):
            time.sleep(RETRY_WAIT_S * attempt)
            try:
                data = self._fetch_once(start, end)
                if len(data) == end - start:
                    return data
                error = ConnectionError(f"the connection closed after {len(data)} of {end - start} bytes")
            except urllib.error.HTTPError as exc:
                raise TextureNetsError(f"{self.url}: HTTP {exc.code} {exc.reason}") from exc
            except CONNECTION_ERRORS as exc:
                error = exc
        raise TextureNetsError(f"cannot read {self.url} ({_reason(error)}): run the command again "
                               f"(the photos extracted so far are kept)") from error

    def _fetch_once(self, start: int, end: int) -> bytes:
        """One ranged request; fewer bytes than asked when the connection drops."""
        with _open(self.url, start, end) as response:
            if response.status != 206 or _span(self.url, response, start)[1] != self.size:
                raise TextureNetsError(f"{self.url}: the server stopped serving byte ranges of the same file")
            return response.read(end - start)
