"""benchmarks/gpu_check.py's dry run: every stage of the GPU check in a tiny form on the CPU, so that
the script a lent GPU runs in one go cannot rot between loans."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ["setup", "cuda_tests", "torchrun_smoke", "speed_training", "speed_inference", "speed_compile", "report"]


def test_the_dry_run_passes_every_stage_and_writes_the_speed_results(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry_run", "--out", str(out),
                           "--budget_s", "240"], cwd=tmp_path, env={**os.environ, "OUT": ""},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "dry_run" and summary["ok"]
    assert [s["name"] for s in summary["stages"]] == STAGES
    for stage in summary["stages"]:
        assert stage["status"] == "ok" and stage["ok"], stage
        assert stage["seconds"] >= 0 and isinstance(stage["tail"], str)
    tails = {s["name"]: s["tail"] for s in summary["stages"]}
    assert "tests collected" in tails["cuda_tests"]
    assert "all_reduce and DDP ok" in tails["torchrun_smoke"] and "saved " in tails["torchrun_smoke"]

    speed = json.loads((out / "speed.json").read_text())
    assert speed["machine"]["torch"] and speed["errors"] == []
    (training,) = speed["training"]
    assert training["batch"] == 1 and training["size"] == 256 and training["images_per_s"] > 0
    engines = [row["engine"] for row in speed["inference"]]
    assert engines == ["fp32", "fp32 compile"] and all(row["ms"] > 0 for row in speed["inference"])
    assert "| generator |" in (out / "speed.md").read_text()
    log = (out / "gpu_check.log").read_text()
    assert all(f"===== {name}: ok" in log for name in STAGES[:-1])
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.log", "speed.json", "speed.md", "summary.json"]
