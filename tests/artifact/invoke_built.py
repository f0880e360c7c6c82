"""Run inside a subprocess whose PYTHONPATH is a built function and its built layer: import the
handler from the artifact and answer each event file given, one marked JSON line each."""

from __future__ import annotations

import json
import sys
from pathlib import Path

# Marks this script's lines apart from what the function itself prints (EMF metrics, logs).
MARK = "ARTIFACT "


def main() -> None:
    import app  # type: ignore[import-not-found]  # the built function's module

    import editgate
    from editgate_local.front import LambdaContext

    print(MARK + json.dumps({"editgate": editgate.__file__, "app": app.__file__}), flush=True)
    for name in sys.argv[1:]:
        try:
            answer = app.lambda_handler(json.loads(Path(name).read_text()), LambdaContext(timeout_seconds=60))
        except Exception as exc:  # what Lambda reports as the invocation's error (the authorizer's 401)
            print(MARK + json.dumps({"event": name, "error": str(exc)}), flush=True)
            continue
        print(MARK + json.dumps({"event": name, "answer": answer}), flush=True)
    # What came from this interpreter's site-packages rather than the artifact (whose paths have
    # no site-packages): on Lambda, only what the runtime ships is there.
    outside = {
        module.split(".")[0]
        for module, loaded in list(sys.modules.items())
        if "site-packages" in (getattr(loaded, "__file__", None) or "")
    }
    print(MARK + json.dumps({"site_packages": sorted(outside)}), flush=True)


if __name__ == "__main__":
    main()
