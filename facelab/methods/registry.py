"""Every method facelab ships, by name: what it is, what it needs, how to start it.

    >>> from facelab import methods
    >>> methods.available()[:4]
    ['fgsm', 'ifgsm', 'pgd', 'mifgsm']
    >>> info = methods.get("tip_im")
    >>> info.needs, info.iterations, info.budget
    (('targets',), 'steps', 'eps')
    >>> steps = info(x, [model], targets=faces, steps=20)  # doctest: +SKIP

Calling a :class:`MethodInfo` starts the method with one signature for all of them,
``info(x, models, **inputs_and_parameters)``: ``x`` the faces (N, 3, H, W), ``models`` the face
models the method works against (for PMT: the authorized models it keeps working, for the
reconstruction attack: the model whose shallow features it inverts; ErasableMask only watches them),
then the extra inputs named in :attr:`MethodInfo.needs` and any of the method's own parameters.

The registry is the list the conformance suite (``tests/methods/test_conformance.py``) walks: a
method registered here is checked against the contract every method owes (Step fields, budget held,
same seed same result, ``close()`` frees what it holds, bad input refused) without a line of test
code.  Adding a paper: write its generator, then one :func:`register` call below.
"""
from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Literal

import torch
from torch import nn

from .. import validate
from ..steps import Step

#: the extra inputs a method may need, and what each is
INPUTS: dict[str, str] = {
    "targets": "faces of other identities to steer toward, (k, 3, H, W) float in [0,1]",
    "target": "one face to imitate, (1, 3, H, W) float in [0,1]",
    "others": "faces of other people, the gallery the protected face must move away from, (k, 3, H, W)",
    "user_images": "more photos of the protected person, (k, 3, H, W)",
    "authorized": "a face model that must still recognise the protected face",
    "protector": "a trained ErasableMask (or the name of its checkpoint in the facelab cache)",
    "attributes": "ErasableMask's target attributes b, (N, n_attrs) in [0,1] or a dict by name; "
                  "facelab.methods.erasable_mask.own_attributes(x) gives each face's own",
}


@dataclass(frozen=True)
class MethodInfo:
    """One registered method.

    ``function`` the public generator function (its signature and docstring are the reference);
    ``start(x, models, **kwargs)`` calls it with the registry's common signature; ``needs`` the extra
    inputs of :data:`INPUTS` it cannot run without; ``iterations`` the parameter counting its updates
    (a run yields that many + 1 Steps; None: a one-shot method, Steps 0 and 1); ``budget`` the parameter bounding max |x_T − x| (L∞, [0,1]
    scale), None when the method bounds its change otherwise (an SSIM hinge, none at all) or
    returns new images (``output="reconstruction"``); ``early_stop``: it may stop before its
    iteration count.
    """

    name: str
    paper: str
    summary: str
    function: Callable[..., Iterator[Step]]
    start: Callable[..., Iterator[Step]]
    needs: tuple[str, ...] = ()
    iterations: str | None = "steps"
    budget: str | None = "eps"
    early_stop: bool = False
    output: Literal["protected", "reconstruction"] = "protected"

    def default(self, parameter: str) -> Any:
        """The default value of one of the method's parameters, read from its signature."""
        p = inspect.signature(self.function).parameters.get(parameter)
        if p is None or p.default is inspect.Parameter.empty:
            raise KeyError(f"{self.name} has no parameter {parameter!r} with a default")
        return p.default

    def accepts(self, parameter: str) -> bool:
        """Whether the method takes ``parameter`` (named, or through ``**kwargs`` it hands on)."""
        params = inspect.signature(self.function).parameters
        return parameter in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())

    def __call__(self, x: torch.Tensor, models: nn.Module | list[nn.Module], **kwargs) -> Iterator[Step]:
        missing = [n for n in self.needs if kwargs.get(n) is None]
        if missing:
            raise ValueError(f"{self.name} needs {', '.join(missing)}: "
                             + "; ".join(f"{n} = {INPUTS[n]}" for n in missing))
        return self.start(x, models, **kwargs)


_REGISTRY: dict[str, MethodInfo] = {}
_BUILT_IN_LOADED = False


def _registry() -> dict[str, MethodInfo]:
    """The registry, with facelab's own methods registered on first use (importing every paper's
    module only when someone asks for the list)."""
    global _BUILT_IN_LOADED
    if not _BUILT_IN_LOADED:
        _BUILT_IN_LOADED = True
        _register_all()
    return _REGISTRY


def register(info: MethodInfo) -> MethodInfo:
    """Add a method (a paper's generator behind the common signature) to the registry."""
    _registry()
    unknown = [n for n in info.needs if n not in INPUTS]
    if unknown:
        raise ValueError(f"{info.name}: unknown inputs {unknown}; describe them in INPUTS first")
    if info.name in _REGISTRY:
        raise ValueError(f"a method named {info.name!r} is already registered")
    _REGISTRY[info.name] = info
    return info


def available() -> list[str]:
    """Names of every registered method, in registration order."""
    return list(_registry())


def get(name: str) -> MethodInfo:
    """The registered method ``name``; an unknown name lists the known ones and the closest."""
    if name in _registry():
        return _REGISTRY[name]
    close = difflib.get_close_matches(str(name), list(_REGISTRY), n=1, cutoff=0.5)
    guess = f" — did you mean {close[0]!r}?" if close else ""
    raise KeyError(f"unknown method {name!r}; registered: {', '.join(_REGISTRY)}{guess}")


def _as_list(models) -> list[nn.Module]:
    return [models] if isinstance(models, nn.Module) else list(models)


# -- the methods ----------------------------------------------------------------------------------


def _register_all() -> None:
    import importlib

    # the modules (the package binds several of these names to the functions themselves)
    baselines, fawkes, pmask, pmt, reconstruction, targeted_anonymization, tip_im, erasable = (
        importlib.import_module(f"{__package__}.{m}") for m in (
            "baselines", "fawkes", "pmask", "pmt", "reconstruction", "targeted_anonymization", "tip_im",
            "erasable_mask.method"))

    gradient = "gradient baseline on face embeddings (dodging by default)"
    for name, paper in (("fgsm", "Goodfellow et al. 2015"), ("ifgsm", "Kurakin et al. 2017"),
                        ("pgd", "Madry et al. 2018"), ("mifgsm", "Dong et al. 2018")):
        fn = getattr(baselines, name)
        register(MethodInfo(name, paper, gradient, fn, lambda x, models, _fn=fn, **kw: _fn(x, models, **kw),
                            iterations=None if name == "fgsm" else "steps"))
    register(MethodInfo(
        "tip_im", "Yang et al. 2021 (TIP-IM)", "targeted identity protection: steer toward a target identity",
        tip_im.tip_im, lambda x, models, targets, **kw: tip_im.tip_im(x, targets, models, **kw), needs=("targets",)))
    register(MethodInfo(
        "targeted_anonymization", "Ding et al. (Targeted Anonymization)",
        "fool the victim models while an authorized model still matches (boundary walking)",
        targeted_anonymization.targeted_anonymization,
        lambda x, models, user_images, authorized, **kw: targeted_anonymization.targeted_anonymization(
            x, user_images, victim=models, authorized=authorized, **kw),
        needs=("user_images", "authorized"), iterations="n"))
    register(MethodInfo(
        "targeted_anonymization_baseline", "Ding et al. (Targeted Anonymization), Eq. 2",
        "the paper's baseline: a fixed weight d between victim and authorized model, no boundary",
        targeted_anonymization.targeted_anonymization_baseline,
        lambda x, models, authorized, **kw: targeted_anonymization.targeted_anonymization_baseline(
            x, victim=models, authorized=authorized, **kw),
        needs=("authorized",), iterations="n"))
    register(MethodInfo(
        "pmask", "PMask", "reverse triplet loss under an SSIM hinge with dynamic κ, early convergence",
        pmask.pmask, lambda x, models, others, **kw: pmask.pmask(x, others, models, **kw), needs=("others",),
        iterations="max_steps", budget=None, early_stop=True))
    register(MethodInfo(
        "fawkes", "Shan et al. 2020 (Fawkes-style cloak)", "cloak toward a target's features under a DSSIM budget",
        fawkes.fawkes, lambda x, models, target, **kw: fawkes.fawkes(x, target, models, **kw), needs=("target",),
        iterations="max_step", budget="clip"))
    register(MethodInfo(
        "pmt", "Wang et al. (PMT, Facial Data Minimization)",
        "obfuscated images only the authorized models' shallow layers can use",
        pmt.pmt, lambda x, models, **kw: pmt.pmt(x, models, **kw), budget=None))

    def _reconstruct(x, models, n_layers: int = 5, **kw):
        x = validate.images(x, "x")
        shallow = _as_list(models)[0].shallow(n_layers)
        kw.setdefault("size", x.shape[-1])

        def steps():  # the shallow features E_c(x) are computed at the first next(), like every method's work
            with torch.no_grad():
                z = shallow(x)
            yield from reconstruction.white_box_reconstruction(z, shallow, **kw)

        return steps()

    register(MethodInfo(
        "white_box_reconstruction", "Wang et al. (PMT), the white-box reconstruction attack",
        "invert a shallow model: rebuild faces from their shallow features E_c(x)",
        reconstruction.white_box_reconstruction, _reconstruct, budget=None, output="reconstruction"))
    register(MethodInfo(
        "erasable_mask", "ErasableMask (Shen, Zhang et al.)",
        "a trained generator's one-shot protection, and what its restorer erases it back to",
        erasable.erasable_mask,
        lambda x, models, protector, monitor=(), **kw: erasable.erasable_mask(
            x, protector=protector, monitor=[*_as_list(models), *_as_list(monitor)], **kw),
        needs=("protector", "attributes"), iterations=None, budget=None))

