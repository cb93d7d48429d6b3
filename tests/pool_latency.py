"""Pool the browser test's capture-to-display latency over several runs (`make
latency-browser`): each run is a new browser, server and call, and runs differ more than
frames within a run do (where the frames fall against the display's refresh), so one run's
p95 says little. Prints, and with --json emits, the pooled p50/p95 over every timed frame,
each run's p95, and the runs' median fps, server step and queue."""

import argparse
import json

import numpy as np


def pool(runs: list[dict]) -> dict:
    if not runs:
        raise ValueError("no runs to pool")
    ms = np.concatenate([r["latency_ms"] for r in runs])
    median = lambda xs: round(float(np.median(xs)), 1)
    return {"runs": len(runs), "frames": int(ms.size),
            "latency_ms_p50": round(float(np.percentile(ms, 50)), 1),
            "latency_ms_p95": round(float(np.percentile(ms, 95)), 1),
            "per_run_p95": [r["latency_ms_p95"] for r in runs],
            "median_run_p95": median([r["latency_ms_p95"] for r in runs]),
            "median_fps": median([r["page_output_fps"] for r in runs]),
            "median_step_ms": median([r["server_ms_p50"]["step"] for r in runs]),
            "median_queue_ms": median([r["server_ms_p50"]["queue"] for r in runs])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("file", help="JSON lines written by the browser test (LSD_SERVE_LATENCY_OUT)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with open(args.file, encoding="utf-8") as f:
        result = pool([json.loads(line) for line in f if line.strip()])
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
