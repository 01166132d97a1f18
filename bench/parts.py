"""The part runner the bench scripts share: each `--only` part is a `part_NAME()` method of the
script's bench object; a part that fails is recorded and the others still run; Ctrl-C (and
SIGTERM) stops after the part under way."""

from __future__ import annotations

import json
import signal
import time
import traceback


def run_parts(bench, parts: list[str], results: dict, log) -> list[str]:
    """Runs each part into `results[part]` (with its `part_s`); returns the parts that failed."""
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    failed = []
    for part in parts:
        log(f"--- {part} ---")
        t = time.monotonic()
        try:
            results[part] = getattr(bench, f"part_{part}")()
        except KeyboardInterrupt:
            results[part] = {"error": "interrupted"}
            failed.append(part)
            break
        except Exception as e:  # noqa: BLE001 — record it, run the other parts
            traceback.print_exc()
            results[part] = {"error": f"{type(e).__name__}: {e}"[:2000]}
            failed.append(part)
        results[part]["part_s"] = round(time.monotonic() - t, 1)
        log(f"{part}: {json.dumps(results[part], indent=1)}")
    return failed
