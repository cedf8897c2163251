"""`texture-nets download coco`: the COCO 2017 photos to train on (see texture_nets/download.py)."""

from __future__ import annotations

import argparse
import sys

from texture_nets.cli.common import fail
from texture_nets.core.errors import TextureNetsError
from texture_nets.training.download import COCO_ARCHIVES, OFFICIAL_BASE_URL, fetch_coco


def download_parser() -> argparse.ArgumentParser:
    sizes = {name: f"{archive.size / 2**30:.1f} GB" if archive.size > 2**30 else f"{archive.size / 2**20:.0f} MB"
             for name, archive in COCO_ARCHIVES.items()}
    parser = argparse.ArgumentParser(
        prog="texture-nets download", allow_abbrev=False,
        description="Download and extract the COCO 2017 photos that texture networks are trained on, into "
                    "DEST/<split>/ (then: python train.py --data_dir DEST/<split> --texture style.jpg). "
                    f"The whole train2017 archive is {sizes['train2017']} (118,287 photos), val2017 "
                    f"{sizes['val2017']} (5,000 photos). An interrupted download continues where it stopped "
                    "when run again; each archive is checked (size, MD5) before it is extracted.")
    parser.add_argument("dataset", choices=("coco",), help="the data set (COCO 2017)")
    parser.add_argument("--split", choices=("train2017", "val2017"), default="train2017",
                        help="which photos (default: train2017)")
    parser.add_argument("--limit", type=int, metavar="N",
                        help="extract only the first N photos, reading just them and the archive's index from the "
                             "server with byte ranges (--limit 500 fetches about 90 MB, not 18 GB); run again with a "
                             "larger N to add more")
    parser.add_argument("--dest", default="coco", help="folder to extract into (default: coco)")
    parser.add_argument("--annotations", action="store_true",
                        help=f"also fetch annotations_trainval2017.zip ({sizes['annotations']}, extracted whole "
                             "into DEST/annotations/), for train.py --annotations / --categories")
    parser.add_argument("--keep_archive", action="store_true",
                        help="keep each downloaded .zip in DEST after extracting it (default: delete it)")
    parser.add_argument("--base_url", default=OFFICIAL_BASE_URL,
                        help=f"where the archives are (default: {OFFICIAL_BASE_URL}; another server's archives "
                             "are checked by their own CRC-32s, their MD5 being unknown)")
    return parser


def download_main(argv: list[str] | None = None) -> int:
    """Entry point of `texture-nets download`; returns the exit status."""
    args = download_parser().parse_args(argv)
    try:
        results = fetch_coco(args.split, args.dest, limit=args.limit, annotations=args.annotations,
                             base_url=args.base_url, keep_archive=args.keep_archive)
    except (TextureNetsError, OSError) as exc:  # OSError: e.g. an unwritable --dest
        return fail("texture-nets download", exc)
    except KeyboardInterrupt:  # the .part file stays, to continue from; extracted files are whole
        print("texture-nets download: interrupted (run the same command again to continue)", file=sys.stderr)
        return 130
    for result in results:
        kept = f" ({result.present} already there)" if result.present else ""
        print(f"{result.folder}: {result.extracted} files extracted{kept}")
    return 0
