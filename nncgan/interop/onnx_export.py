"""`nncgan export RUN --format onnx`: the runtime generator as ONNX, by NNabla's own converter.

The executor's network is written as a runtime-only NNP (fixed batch size) and converted by
`nnabla_cli convert` from the `nnabla-converter` package (which brings onnx and TensorFlow;
install it with `pip install nnabla-converter==1.39.0`, or `pip install -e .[onnx]`).
"""
import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .. import safeio
from ..errors import RunError
from .nnp_export import export_nnp


def converter_available():
    return importlib.util.find_spec("nnabla.utils.converter.onnx") is not None \
        and importlib.util.find_spec("onnx") is not None


def export_onnx(run_dir, out_path, *, batch_size=None, log=print):
    """Write the run's executor network, last epoch's parameters, as an ONNX file; returns its path.

    batch_size: the ONNX input's batch dimension (default 1).
    """
    if not converter_available():
        raise RunError("ONNX export needs NNabla's converter, which is not installed: "
                       "pip install nnabla-converter==1.39.0 (it brings onnx and TensorFlow)")
    out = Path(out_path)
    safeio.check_target(out)  # a folder or device at --out: refused before any work
    batch = batch_size or 1
    with tempfile.TemporaryDirectory() as tmp:
        nnp = Path(tmp) / "runtime.nnp"
        export_nnp(run_dir, nnp, batch_size=batch, runtime_only=True, log=lambda *a: None)
        part = Path(tmp) / "out.onnx"
        r = subprocess.run([sys.executable, "-m", "nnabla.utils.cli.cli", "convert", "-b", str(batch),
                            str(nnp), str(part)], capture_output=True, text=True)
        if r.returncode != 0 or not part.is_file():
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
            raise RunError(f"nnabla_cli convert could not convert {run_dir}'s executor network to ONNX: {tail[0]}")
        with safeio.atomic_path(out) as dest:  # the converter wrote in /tmp: copied beside `out`
            shutil.copyfile(part, dest)
    log(f"nncgan: {out}: the executor network of {run_dir} as ONNX (batch {batch})")
    return out
