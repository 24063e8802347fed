"""`main.py` with one fault injected: decoding a file whose name contains "poison" kills
the process with SIGKILL, as the kernel's OOM killer would on a 90-megapixel noise PNG.
Used by the worker-death tests: `python crashing_worker.py --db`."""
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from app import cli  # noqa: E402
from app.pipeline import decode  # noqa: E402

_real_load = decode.load


def _load(path, *args, **kwargs):
    if "poison" in Path(path).name:
        os.kill(os.getpid(), signal.SIGKILL)
    return _real_load(path, *args, **kwargs)


decode.load = _load
for module in ("app.services.detect", "app.services.embed"):
    __import__(module)
    if hasattr(sys.modules[module], "load"):
        sys.modules[module].load = _load

if __name__ == "__main__":
    sys.exit(cli.main())
