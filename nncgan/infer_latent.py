"""`nncgan infer --interpolate` / `--arithmetic`: the options checked, the picture drawn and saved."""
from pathlib import Path

from PIL import PngImagePlugin

from . import latent
from .errors import NncganError
from .images import auto_scale, save_tile, scaled


def infer_latent(loaded, *, interpolate=None, arithmetic=None, label=None, labels=None, interp="auto",
                 truncation=None, scale=None, out=None, say=print):
    """infer --interpolate S1 S2 (a strip) or --arithmetic S1 S2 S3 (z1 - z2 + z3 with its sources)
    from `loaded` (Run.sampler); `labels`: "A,B,C[,R]" as typed. Returns the PNG written."""
    run, folder, sampler, used_ema = loaded.run, loaded.folder, loaded.sampler, loaded.used_ema
    if interpolate and arithmetic:
        raise NncganError("give --interpolate or --arithmetic, not both")
    text = labels
    labels = [label] * sampler.n
    if text:
        try:
            labels = [int(v) for v in text.split(",")]
        except ValueError:
            raise NncganError(f"--labels takes integers separated by commas, got {text!r}") from None
        if len(labels) == 3:
            labels.append(labels[2])   # the result keeps z3's label unless a fourth is given
        if not arithmetic or len(labels) != 4:
            raise NncganError("--labels goes with --arithmetic: three labels (z1, z2, z3) or four (and the result)")
    if sampler.conditional:
        if any(l is None for l in labels):
            raise NncganError("this graph is conditional: give --label L (or --labels a,b,c with --arithmetic)")
        for l in set(labels):
            sampler.check_label(l)
    elif label is not None or text:
        sampler.check_label(0)   # says the graph takes no label
    meta = {"run": str(run), "epoch": folder.name, "ema": used_ema}
    given = labels if text else [label] if label is not None else []
    tag = f"label_{'-'.join(map(str, given))}_" if given else ""
    if interpolate:
        s1, s2 = interpolate
        images, how = latent.interpolate(sampler, s1, s2, labels[0], interp, truncation)
        scale = scale or auto_scale(images)
        out = Path(out) if out else Path(run) / "infer" / f"{tag}interp_seed{s1}-{s2}.png"
        save_tile(images, out, 1, sampler.n, info={**meta, "label": labels[0], "seeds": f"{s1},{s2}",
                                                   "steps": sampler.n, "interpolation": how,
                                                   "truncation": truncation or "none", "scale": scale},
                  scale=scale)
        say(f"nncgan: {sampler.n} steps from seed {s1} to seed {s2} ({how}) from {folder} -> {out}")
        return out
    s = arithmetic
    images, _ = latent.arithmetic(sampler, s, labels, truncation)
    out = Path(out) if out else Path(run) / "infer" / f"{tag}arith_seed{s[0]}-{s[1]}+{s[2]}.png"
    scale = scale or auto_scale(images)
    picture = scaled(latent.equation_picture(images)[0], scale)
    info = PngImagePlugin.PngInfo()
    for k, v in {**meta, "seeds": ",".join(map(str, s)), "labels": ",".join(map(str, labels)),
                 "truncation": truncation or "none", "scale": scale}.items():
        info.add_text(k, str(v))
    from . import safeio
    with safeio.atomic_path(out) as tmp:
        picture.save(tmp, format="PNG", pnginfo=info)
    say(f"nncgan: z(seed {s[0]}) - z(seed {s[1]}) + z(seed {s[2]}) from {folder} -> {out}")
    return out
