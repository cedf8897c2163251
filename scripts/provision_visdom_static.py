#!/usr/bin/env python
"""Install the JavaScript, CSS and font files Visdom's web page needs, from the npm registry.

On its first start `python -m visdom.server` downloads these files from unpkg.com, cdn.plot.ly,
d3js.org and cdnjs (visdom/server/build.py, `download_scripts`). Machines without internet access
get a blank page. The CDNs serve npm packages' files, so this script takes the same versions from
the npm registry with `npm pack` (npm checks each tarball's integrity hash), copies the files to
the names Visdom's index.html asks for, and writes `static/version.built` so the server skips its
own download. Run it with the Python environment that has visdom installed:

    python scripts/provision_visdom_static.py            # into visdom's installed static folder
    python scripts/provision_visdom_static.py --check    # exit 1 if a file is missing

The versions are the ones visdom 0.2.4's build.py pins (plotly 2.11.1, React 16.2.0, ...).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

MATHJAX = ["MathJax.js", "config/Safe.js", "config/TeX-AMS-MML_HTMLorMML.js", "extensions/Safe.js",
           "jax/output/SVG/fonts/TeX/fontdata.js", "jax/output/SVG/jax.js",
           "jax/output/SVG/fonts/TeX/Size1/Regular/Main.js", "jax/output/SVG/config.js"]
GLYPHS = "dist/fonts/glyphicons-halflings-regular"

# (npm package, version, file in the package, destination under visdom/static/), as build.py names them.
FILES = [
    ("jquery", "3.1.1", "dist/jquery.min.js", "js/jquery.min.js"),
    ("bootstrap", "3.3.7", "dist/js/bootstrap.min.js", "js/bootstrap.min.js"),
    ("bootstrap", "3.3.7", "dist/css/bootstrap.min.css", "css/bootstrap.min.css"),
    *[("bootstrap", "3.3.7", f"{GLYPHS}.{ext}", f"fonts/glyphicons-halflings-regular.{ext}")
      for ext in ("eot", "woff2", "woff", "ttf", "svg")],
    ("bootstrap", "3.3.7", f"{GLYPHS}.svg", "fonts/glyphicons-halflings-regular.svg#glyphicons_halflingsregular"),
    ("react", "16.2.0", "umd/react.production.min.js", "js/react-react.min.js"),
    ("react-dom", "16.2.0", "umd/react-dom.production.min.js", "js/react-dom.min.js"),
    ("react-modal", "3.1.10", "dist/react-modal.min.js", "js/react-modal.min.js"),
    ("plotly.js-dist-min", "2.11.1", "plotly.min.js", "js/plotly-plotly.min.js"),  # cdn.plot.ly/plotly-2.11.1
    ("sjcl", "1.0.7", "sjcl.js", "js/sjcl.js"),
    ("layout-bin-packer", "1.4.0", "dist/layout-bin-packer.js", "js/layout_bin_packer.js"),
    ("layout-bin-packer", "1.4.0", "dist/layout-bin-packer.js.map", "js/layout-bin-packer.js.map"),
    ("d3", "3.5.17", "d3.min.js", "js/d3.v3.min.js"),  # d3js.org/d3.v3 = the last 3.x
    ("d3-selection-multi", "1.0.1", "build/d3-selection-multi.js", "js/d3-selection-multi.v1.js"),
    ("save-svg-as-png", "1.4.17", "lib/saveSvgAsPng.js", "js/saveSvgAsPng.js"),
    ("react-resizable", "1.4.6", "css/styles.css", "css/react-resizable-styles.css"),
    ("react-grid-layout", "0.16.3", "css/styles.css", "css/react-grid-layout-styles.css"),
    ("classnames", "2.2.5", "index.js", "fonts/classnames"),
    *[("mathjax", "2.7.5", path, f"js/mathjax/2.7.5/{path}") for path in MATHJAX],  # cdnjs mathjax/2.7.5
]


MATHJAX_3 = ["es5/tex-mml-svg.js"]
VISDOM_0_3_CHANGES = {  # what visdom 0.3's build.py (Python ≥ 3.12) fetches instead
    "react-resizable": "3.1.3", "react-grid-layout": "2.2.3"}


def files_for(version: str) -> list[tuple[str, str, str, str]]:
    """FILES as the installed visdom's build.py names them: 0.2.x as above; 0.3.x with newer
    react-resizable / react-grid-layout styles and MathJax 3.2.2 instead of 2.7.5."""
    if not version.startswith("0.3"):
        return FILES
    kept = [(package, VISDOM_0_3_CHANGES.get(package, v), member, dest) for package, v, member, dest in FILES
            if package != "mathjax"]
    return kept + [("mathjax", "3.2.2", path, f"js/mathjax/3.2.2/{path}") for path in MATHJAX_3]


def visdom_static_dir() -> Path:
    """The `static` folder of the visdom package this Python imports."""
    try:
        import visdom
    except ImportError:
        sys.exit("visdom is not installed in this Python environment (see the README's install command)")
    return Path(visdom.__file__).resolve().parent / "static"


def npm_pack(package: str, version: str, into: Path) -> Path:
    """Download one package tarball from the npm registry (integrity-checked by npm)."""
    if shutil.which("npm") is None:
        sys.exit("npm is not installed (Debian: apt-get install npm; or any Node.js ≥ 18 with npm)")
    result = subprocess.run(["npm", "pack", f"{package}@{version}", "--json", "--silent",
                             "--pack-destination", str(into)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"npm pack {package}@{version} failed: {result.stderr.strip()[-500:]}")
    return into / json.loads(result.stdout)[0]["filename"]


def install(static: Path, files: list) -> None:
    """Fetch every package once and copy its files into `static`."""
    with tempfile.TemporaryDirectory() as tmp:
        tarballs: dict[tuple[str, str], tarfile.TarFile] = {}
        for package, version, member, dest in files:
            key = (package, version)
            if key not in tarballs:
                tarballs[key] = tarfile.open(npm_pack(package, version, Path(tmp)))
            source = tarballs[key].extractfile(f"package/{member}")
            if source is None:
                sys.exit(f"{package}@{version} has no file {member}")
            target = static / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as handle:
                shutil.copyfileobj(source, handle)
        for archive in tarballs.values():
            archive.close()
    import visdom
    (static / "version.built").write_text(visdom.__version__)


def missing(static: Path, files: list) -> list[str]:
    """Destinations not yet in `static`."""
    return [dest for *_, dest in files if not (static / dest).is_file()] + \
        ([] if (static / "version.built").is_file() else ["version.built"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report missing files (exit 1 if any)")
    parser.add_argument("--static_dir", type=Path, help="target folder (default: visdom's own static folder)")
    args = parser.parse_args()
    static = args.static_dir or visdom_static_dir()
    import visdom
    files = files_for(visdom.__version__)
    if not args.check:
        install(static, files)
    absent = missing(static, files)
    for dest in absent:
        print(f"missing: {static / dest}", file=sys.stderr)
    if not absent:
        print(f"visdom {visdom.__version__}: static files complete in {static} ({len(files)} files)")
    return 1 if absent else 0


if __name__ == "__main__":
    sys.exit(main())
