"""`nncgan export`: a run as an NNP file (nnp_export.py) or its executor as ONNX (onnx_export.py)."""
from pathlib import Path

FORMATS = ("nnp", "onnx")


def export_run(run=None, *, runs_dir="runs", format="nnp", out=None, dataset_csv=None, validation_csv=None,
               batch_size=None, max_epoch=None, monitors=True, say=print):
    """Run `run` (default: the latest GAN run, said) written to `out` (default:
    RUN/export/<run>.<format>); returns its path."""
    from .. import runs
    run = runs.chosen(run, runs_dir, "exporting", how="RUN", say=say)
    out = Path(out) if out else run.path / "export" / f"{run.name}.{format}"
    if format == "onnx":
        from .onnx_export import export_onnx
        return export_onnx(run.path, out, batch_size=batch_size, log=say)
    from .nnp_export import export_nnp
    return export_nnp(run.path, out, dataset_csv=dataset_csv, validation_csv=validation_csv,
                      batch_size=batch_size, max_epoch=max_epoch, monitors=monitors, log=say)
