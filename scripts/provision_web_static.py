#!/usr/bin/env python
"""Install onnxruntime-web, the engine of the web page's in-browser live view, from the npm registry.

The page's Live tab can run the network in the browser (WebAssembly) instead of on the server. It
loads onnxruntime-web from the app itself, never from a CDN: this script takes one pinned version
with `npm pack` (npm checks the tarball's integrity hash, and so does this script) and copies the
three files the page loads into the installed package's `web/static/vendor/onnxruntime-web/`.
Without them the page offers the server's way only. Run it with the Python environment that has
texture_nets installed:

    python scripts/provision_web_static.py            # install the files
    python scripts/provision_web_static.py --check    # exit 1 if a file is missing
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE, VERSION = "onnxruntime-web", "1.31.1"
# the registry's dist.integrity of that tarball (npm view onnxruntime-web@1.31.1 dist.integrity)
INTEGRITY = "sha512-5GeH+bWQ+HxM10z7erGlsWqryrwMbSvm/1tkIsKTT48g0fI19VXVVC435t4t7VsPdSQeS7NmuZPXrQ73k82URw=="
# the WebAssembly-only build: its loader, and the SIMD + threads runtime it fetches
FILES = ["dist/ort.wasm.min.js", "dist/ort-wasm-simd-threaded.mjs", "dist/ort-wasm-simd-threaded.wasm"]


def destination() -> Path:
    """The installed page's vendor folder (web/live.py's VENDOR, under web/models.py's STATIC)."""
    from texture_nets.web.live import VENDOR
    from texture_nets.web.models import STATIC
    return STATIC / VENDOR


def missing(folder: Path) -> list[str]:
    return [name for name in FILES if not (folder / Path(name).name).is_file()]


def fetch(folder: Path) -> None:
    """npm pack the pinned tarball, check its hash, copy FILES into `folder` (each atomically)."""
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("npm is needed (Debian: apt-get install npm); the page works without these files, server-side only")
    with tempfile.TemporaryDirectory() as work:
        subprocess.run([npm, "pack", f"{PACKAGE}@{VERSION}", "--silent"], cwd=work, check=True,
                       stdout=subprocess.DEVNULL)
        tarball = next(Path(work).glob("*.tgz"))
        digest = "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
        if digest != INTEGRITY:
            sys.exit(f"{tarball.name}: integrity {digest} is not the pinned {INTEGRITY}")
        folder.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tarball) as archive:
            for name in FILES:
                member = archive.extractfile(f"package/{name}")
                target = folder / Path(name).name
                partial = target.with_name(target.name + ".part")
                with open(partial, "wb") as out:
                    shutil.copyfileobj(member, out)
                partial.replace(target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether the files are there (exit 1 if not)")
    args = parser.parse_args(argv)
    folder = destination()
    if not args.check and missing(folder):
        fetch(folder)
    absent = missing(folder)
    if absent:
        print(f"{PACKAGE} {VERSION}: missing in {folder}: {', '.join(absent)}")
        return 1
    print(f"{PACKAGE} {VERSION}: in {folder} ({len(FILES)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
