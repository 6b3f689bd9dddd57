"""Where NNabla computes: the CUDA/cuDNN extension when installed, the CPU otherwise."""
CHOICES = ("auto", "cpu", "cudnn")
HALF_ON_CPU = ("nncgan: warning: --type-config half on the CPU: NNabla has no float16 CPU kernels and "
               "emulates them, many times slower than float; half is meant for CUDA GPUs "
               "(docs/performance.md). Use --type-config float here.")


def cuda_available():
    try:
        import nnabla_ext.cudnn  # noqa: F401  (importable = usable)
        return True
    except Exception:  # not installed, or installed without a usable driver
        return False


def select(name="auto", type_config="float", log=print):
    """Set NNabla's default context; returns the backend used ('cudnn' or 'cpu')."""
    import nnabla as nn  # here, not at the top: the CLI reads CHOICES before nnabla is quieted
    from nnabla.ext_utils import get_extension_context
    backend = "cpu"
    if name in ("auto", "cudnn"):
        if cuda_available():
            backend = "cudnn"
        elif name == "cudnn":  # asked for by name; with auto, `train` says "on cpu" and that is enough
            log("nncgan: nnabla-ext-cuda (cuDNN) is not available; computing on the CPU")
    if backend == "cpu" and type_config == "half":
        log(HALF_ON_CPU)
    nn.set_default_context(get_extension_context(backend, type_config=type_config))
    return backend
