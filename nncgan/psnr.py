"""Peak signal-to-noise ratio, the super-resolution measure: 10 log10(peak^2 / MSE), per image."""
import numpy as np


def psnr(images, references, peak=1.0):
    """PSNR in dB of each image (N, ...) against its reference; +inf where they are identical.

    Images and references are float arrays in [0, peak] (nncgan's images: [0, 1]).
    """
    a = np.asarray(images, np.float64)
    b = np.asarray(references, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images {a.shape} and references {b.shape} differ in shape")
    mse = ((a - b) ** 2).reshape(len(a), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(peak ** 2 / mse)


def mean_psnr(images, references, peak=1.0):
    """The mean of the per-image PSNRs (the usual SR report), identical pairs left out."""
    values = psnr(images, references, peak)
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("inf")
