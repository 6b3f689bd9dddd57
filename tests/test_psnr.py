import numpy as np
import pytest

from nncgan.psnr import mean_psnr, psnr


def test_psnr_known_values():
    ref = np.zeros((3, 1, 4, 4))
    imgs = ref.copy()
    imgs[0] += 0.1                 # MSE 0.01 -> 20 dB
    imgs[1, 0, 0, 0] = 1.0         # MSE 1/16 -> 10 log10 16 = 12.041 dB
    out = psnr(imgs, ref)
    assert out[0] == pytest.approx(20.0)
    assert out[1] == pytest.approx(10 * np.log10(16))
    assert out[2] == np.inf                                   # identical
    assert mean_psnr(imgs, ref) == pytest.approx((20.0 + 10 * np.log10(16)) / 2)
    assert psnr(imgs[:1] * 255, ref[:1], peak=255)[0] == pytest.approx(20.0)   # 25.5 off on 255


def test_psnr_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(np.zeros((2, 1, 4, 4)), np.zeros((2, 1, 8, 8)))
