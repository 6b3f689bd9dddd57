"""Latent tools: walk between two latent codes, and z1 - z2 + z3, on the executor network.

A latent code is what the executor's generator Inputs (NNC's Input with Generator Normal or
Uniform) draw for one image from `RandomState(seed)`, exactly as `nncgan infer --num 1 --seed S`
draws it, so the ends of a walk are the images infer draws for those seeds. Constant
generators are not latent; they keep their value.
"""
import numpy as np

from .errors import RunError
from .sampling import truncated

LATENT_KINDS = ("Normal", "Uniform")


def code(sampler, seed, truncation=None):
    """The latent code of `seed`: one array (1, ...) per generator Input of the executor, in order."""
    rng = np.random.RandomState(seed)
    out = []
    for g in sampler.built.generators:
        shape = (1,) + g.var.shape[1:]
        if truncation is not None and g.kind in LATENT_KINDS:
            out.append(truncated(g.kind, g.multiplier, shape, rng, truncation))
        elif g.kind == "Normal":
            out.append(rng.standard_normal(shape) * g.multiplier)
        elif g.kind == "Uniform":
            out.append(rng.uniform(-1.0, 1.0, shape) * g.multiplier)
        else:
            out.append(np.full(shape, g.multiplier))
    return out


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
