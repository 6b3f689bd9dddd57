"""Latents: drawing them (`draw`, `truncated`: the one place), and the latent tools: walk between
two latent codes, and z1 - z2 + z3, on the executor network.

A latent code is what the executor's generator Inputs (NNC's Input with Generator Normal or
Uniform) draw for one image from `RandomState(seed)`, exactly as `nncgan infer --num 1 --seed S`
draws it, so the ends of a walk are the images infer draws for those seeds. Constant
generators are not latent; they keep their value.
"""
import numpy as np

from .errors import RunError

LATENT_KINDS = ("Normal", "Uniform")


def draw(kind, multiplier, shape, rng, truncation=None):
    """What a generator Input (NNC's Input with Generator Normal, Uniform or Constant) holds for one
    step: Normal(0, 1) or Uniform(-1, 1) values drawn from `rng`, times `multiplier`; Constant draws
    nothing. With `truncation` T, Normal/Uniform values beyond +-T are redrawn (`truncated`).
    The one place latents are drawn: training, `infer`, walks and arithmetic all come here."""
    if kind not in LATENT_KINDS:
        return np.full(shape, multiplier)
    if truncation is not None:
        return truncated(kind, multiplier, shape, rng, truncation)
    return _latent(kind, multiplier, shape, rng)


def _latent(kind, multiplier, shape, rng):
    return (rng.standard_normal(shape) if kind == "Normal" else rng.uniform(-1.0, 1.0, shape)) * multiplier


MAX_REDRAWS = 64  # rounds of redrawing; a tiny limit (1e-300) accepts almost nothing, and would never end


def truncated(kind, multiplier, shape, rng, limit):
    """Latents as the generator draws them, each value beyond +-limit redrawn until within
    (the truncation trick: fewer, more typical samples). `limit` must be > 0.

    Values still outside after MAX_REDRAWS rounds are drawn from the truncated distribution
    itself (inverse CDF): the same distribution, in bounded time for any limit."""
    v = _latent(kind, multiplier, shape, rng)
    bad = np.abs(v) > limit
    for _ in range(MAX_REDRAWS):
        if not bad.any():
            return v
        v[bad] = _latent(kind, multiplier, int(bad.sum()), rng)
        bad = np.abs(v) > limit
    if bad.any():
        v[bad] = _truncated_exactly(kind, abs(multiplier), int(bad.sum()), rng, limit)
    return v


def _truncated_exactly(kind, scale, n, rng, limit):
    """n values of scale * Normal (or scale * Uniform(-1, 1)) conditioned on |value| <= limit."""
    if kind != "Normal":
        return rng.uniform(-1.0, 1.0, n) * min(limit, scale)
    if limit < 1e-4 * scale:  # the density is flat there to 5e-9: uniform, which ndtri cannot resolve
        return rng.uniform(-limit, limit, n)
    from scipy.special import ndtr, ndtri
    lo = ndtr(-limit / scale)
    z = ndtri(rng.uniform(lo, 1.0 - lo, n)) * scale
    return np.clip(z, -limit, limit)  # ndtri(0.5 +- 1e-17) rounds: keep the promise exactly


def code(sampler, seed, truncation=None):
    """The latent code of `seed`: one array (1, ...) per generator Input of the executor, in order."""
    rng = np.random.RandomState(seed)
    return [draw(g.kind, g.multiplier, (1,) + g.var.shape[1:], rng, truncation)
            for g in sampler.built.generators]


def generate(sampler, codes, labels):
    """Images (n, C, H, W) for n codes (each a list per generator) and n labels."""
    if len(codes) != sampler.n:
        raise ValueError(f"{len(codes)} codes for a sampler of {sampler.n}")
    if sampler.conditional:
        for v in sampler.built.data["y"]:
            v.d = np.asarray(labels).reshape(sampler.n, 1)
    for i, g in enumerate(sampler.built.generators):
        g.var.d = np.concatenate([c[i] for c in codes], axis=0)
    sampler.output.forward(clear_buffer=True)
    return np.array(sampler.output.d)


def slerp(a, b, t):
    """Spherical interpolation of each row of a and b (flattened), linear where they are parallel."""
    fa, fb = a.reshape(len(a), -1), b.reshape(len(b), -1)
    na, nb = np.linalg.norm(fa, axis=1, keepdims=True), np.linalg.norm(fb, axis=1, keepdims=True)
    cos = np.clip(np.sum(fa * fb, axis=1, keepdims=True) / np.maximum(na * nb, 1e-12), -1.0, 1.0)
    omega = np.arccos(cos)
    so = np.sin(omega)
    safe = so > 1e-6
    wa = np.where(safe, np.sin((1 - t) * omega) / np.where(safe, so, 1), 1 - t)
    wb = np.where(safe, np.sin(t * omega) / np.where(safe, so, 1), t)
    return (wa * fa + wb * fb).reshape(a.shape)


def method_for(sampler, method="auto"):
    """auto: slerp when every latent is Normal (a Gaussian's mass is near a sphere, and a straight
    line's middle is shorter than any code the generator saw); linear for Uniform latents, whose
    straight line stays inside the [-1, 1] cube they are drawn from, while slerp may leave it."""
    if method != "auto":
        return method
    kinds = {g.kind for g in sampler.built.generators if g.kind in LATENT_KINDS}
    return "slerp" if kinds == {"Normal"} else "linear"


def walk(c1, c2, steps, method):
    """`steps` codes from c1 to c2 (both ends included)."""
    out = []
    for t in np.linspace(0.0, 1.0, steps):
        out.append([a if np.array_equal(a, b) else (slerp(a, b, t) if method == "slerp" else (1 - t) * a + t * b)
                    for a, b in zip(c1, c2)])
    return out


def interpolate(sampler, seed1, seed2, label, method="auto", truncation=None):
    """Images of the walk from seed1's code to seed2's, `sampler.n` steps, all of `label`."""
    if sampler.n < 2:
        raise RunError("--steps must be at least 2 (the two ends)")
    if not any(g.kind in LATENT_KINDS for g in sampler.built.generators):
        raise RunError("the executor network has no Normal or Uniform generator Input to interpolate")
    how = method_for(sampler, method)
    codes = walk(code(sampler, seed1, truncation), code(sampler, seed2, truncation), sampler.n, how)
    return generate(sampler, codes, [label] * sampler.n), how


def arithmetic(sampler, seeds, labels, truncation=None):
    """Images of z1, z2, z3 and z1 - z2 + z3 (sampler of 4); `labels` one per image. The result is
    not truncated or clipped: it may lie outside the range the latents are drawn from."""
    z1, z2, z3 = (code(sampler, s, truncation) for s in seeds)
    result = [a - b + c if g.kind in LATENT_KINDS else a
              for a, b, c, g in zip(z1, z2, z3, sampler.built.generators)]
    return generate(sampler, [z1, z2, z3, result], labels), result


def equation_picture(images):
    """z1, z2, z3 and the result in one row: z1 - z2 + z3 = result, the operators drawn in the gaps."""
    from PIL import Image, ImageDraw
    from .images import tile
    images = np.asarray(images)
    n, c, h, w = images.shape
    gap = max(w // 2, 14)
    cells = [tile(images[i:i + 1], 1, 1) for i in range(n)]
    canvas = Image.new(cells[0].mode, (n * w + (n - 1) * gap, h), 0)
    draw = ImageDraw.Draw(canvas)
    white = 255 if c == 1 else (255, 255, 255)
    arm, thick = max(3, gap // 4), max(1, gap // 10)
    for i, cell in enumerate(cells):
        canvas.paste(cell, (i * (w + gap), 0))
        if i == n - 1:
            break
        cx, cy = i * (w + gap) + w + gap // 2, h // 2
        if i == n - 2:   # '='
            for dy in (-arm // 2, arm // 2):
                draw.line([(cx - arm, cy + dy), (cx + arm, cy + dy)], fill=white, width=thick)
            continue
        draw.line([(cx - arm, cy), (cx + arm, cy)], fill=white, width=thick)        # '-'
        if i == 1:       # '+'
            draw.line([(cx, cy - arm), (cx, cy + arm)], fill=white, width=thick)
    return canvas, gap
