"""Run inside a subprocess whose PYTHONPATH is a built function and its built layer: import the
handler from the artifact and answer each event file given, one JSON line each."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    import app  # type: ignore[import-not-found]  # the built function's module

    import editgate
    from editgate_local.front import LambdaContext

    print(json.dumps({"editgate": editgate.__file__, "app": app.__file__}), flush=True)
    for name in sys.argv[1:]:
        answer = app.lambda_handler(json.loads(Path(name).read_text()), LambdaContext())
        print(
            json.dumps({"event": name, "statusCode": answer["statusCode"], "body": answer["body"]}),
            flush=True,
        )


if __name__ == "__main__":
    main()
