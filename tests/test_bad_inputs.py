"""Generated malformed calls of feature_loss, style_loss, gram_matrix, adversarial_loss,
discriminator_loss and the modules (constructor and forward).

Each call runs on the compiled path (ganloss_cuda.functional / modules) and on the reference
(ganloss_cuda.reference, or the module with the reference forced). Both must raise the same
ValueError or TypeError with the same message, naming the argument: never another exception type,
a crash, or a result. The whole set runs once in a subprocess (``python tests/test_bad_inputs.py``)
that prints one JSON line per case; a case that kills the process fails, and the run resumes
after it.
"""
import contextlib
import json
import math
import os
import re
import sys
import warnings

import pytest
import torch

import ganloss_cuda
from _subprocess import run_python
from ganloss_cuda import _ext, functional, modules, reference


def _t(*shape, dtype=torch.float32, device="cpu"):
    return torch.ones(shape, dtype=dtype, device=device)


X = _t(2, 3, 4, 4)
MASK = _t(2, 1, 4, 4)
# Tensors that are not float16/bfloat16/float32/float64.
WRONG_DTYPES = {"int32": X.int(), "int64": X.long(), "uint8": X.byte(), "bool": X.bool(),
                "complex64": X.cfloat()}
# Values of the wrong Python type for a tensor or a list of tensors, and for a number.
NOT_TENSORS = {"None": None, "float": 1.0, "str": "x", "dict": {}}
NOT_NUMBERS = {"None": None, "str": "1.0", "list": [1.0], "bool": True, "complex": 1j,
               "tensor": torch.tensor(1.0)}
BAD_NON_NEGATIVE = {"negative": -1.0, "nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _pair(good, bad, index):
    """Two layers' entries, the one at index bad."""
    entries = [good, good]
    entries[index] = bad
    return entries


def functional_cases():
    """(id, argument the message must name, kwargs of feature_loss)."""
    cases = []

    def add(case_id, arg, **kwargs):
        full = dict(inputs=[X, X], targets=[X, X], masks=[MASK, MASK], weights=[1.0, 0.5])
        full.update(kwargs)
        cases.append((f"feature_loss-{case_id}", arg, full))

    meta = X.to("meta")
    for name, good in (("inputs", X), ("targets", X), ("masks", MASK)):
        for kind, value in NOT_TENSORS.items():
            if not (name == "masks" and kind == "None"):  # masks=None, masks=[None]: no masks
                add(f"{name}={kind}", name, **{name: value})
                for i in (0, 1):
                    add(f"{name}[{i}]={kind}", f"{name}[{i}]", **{name: _pair(good, value, i)})
        add(f"{name}=nested", f"{name}[0]", **{name: [[good], [good]]})
        for count in (1, 3):
            add(f"{name}-length-{count}", "targets" if name == "inputs" else name,
                **{name: [good] * count})
        for i in (0, 1):
            for dtype, bad in WRONG_DTYPES.items():
                add(f"{name}[{i}]-{dtype}", f"{name}[{i}]", **{name: _pair(good, bad, i)})
            add(f"{name}[{i}]-meta", f"{name}[{i}]", **{name: _pair(good, good.to("meta"), i)})
    add("inputs=[]", "inputs", inputs=[], targets=[], masks=[], weights=[])
    add("weights-length-1", "weights", weights=[1.0])
    add("weights-length-3", "weights", weights=[1.0] * 3)
    for other in (torch.float64, torch.float16, torch.bfloat16):
        add(f"inputs[1]-{other}", "inputs[1]", inputs=[X, X.to(other)], targets=[X, X.to(other)])
        add(f"targets[1]-{other}", "targets[1]", targets=[X, X.to(other)])
    for i in (0, 1):
        for shape in ((2, 3, 4, 5), (2, 3, 4), (3, 3, 4, 4), ()):
            add(f"targets[{i}]-shape{shape}", f"targets[{i}]", targets=_pair(X, _t(*shape), i))
        for shape in ((2, 2, 4, 4), (1, 1, 4, 4), (2, 1, 4), (2, 1, 4, 5), ()):
            add(f"masks[{i}]-shape{shape}", f"masks[{i}]", masks=_pair(MASK, _t(*shape), i))
        add(f"meta-pair[{i}]", "inputs[1]", inputs=_pair(X, meta, i), targets=_pair(X, meta, i),
            masks=[])
        add(f"fro-masks[{i}]", f"masks[{i}]", criterion="fro", masks=_pair(None, MASK, i))
    add("per_sample-batch", "inputs[1]", reduction="per_sample", inputs=[X, _t(3, 3, 4, 4)],
        targets=[X, _t(3, 3, 4, 4)], masks=[])
    add("per_sample-0-dim", "inputs[1]", reduction="per_sample", inputs=[X, _t()],
        targets=[X, _t()], masks=[])
    for kind, value in {**NOT_NUMBERS, "float": 1.0, "dict": {}}.items():
        if kind not in ("None", "list"):  # weights=None: weights of 1; [1.0]: a length error
            add(f"weights={kind}", "weights", weights=value)
        if kind != "float":
            add(f"weights[1]={kind}", "weights[1]", weights=[1.0, value])
    for kind, value in BAD_NON_NEGATIVE.items():
        for i in (0, 1):
            add(f"weights[{i}]={kind}", f"weights[{i}]", weights=_pair(1.0, value, i))
    for arg, good, unknown in (("criterion", "l1", "huber"), ("reduction", "mean", "none")):
        for kind, value in {"None": None, "int": 1, "list": [good], "upper": good.upper(),
                            "unknown": unknown, "empty": ""}.items():
            add(f"{arg}={kind}", arg, **{arg: value})
    for criterion in ("l1", "charbonnier"):
        for kind, value in NOT_NUMBERS.items():
            add(f"{criterion}-eps={kind}", "eps", criterion=criterion, eps=value)
    for kind, value in {"zero": 0.0, **BAD_NON_NEGATIVE}.items():
        add(f"charbonnier-eps={kind}", "eps", criterion="charbonnier", eps=value)
    # The same calls with every tensor on the meta device (the compiled path's fake kernel).
    tensor_args = ("inputs", "targets", "masks")
    all_meta = [(f"{case_id}-all-meta", arg,
                 {k: _to_meta(v) if k in tensor_args else v for k, v in kwargs.items()})
                for case_id, arg, kwargs in cases if "meta" not in case_id]
    return cases + all_meta


def style_cases():
    """(id, argument the message must name, kwargs of style_loss), targets as features and as
    Grams."""
    cases = []
    gram, gram1 = _t(2, 3, 3), _t(1, 3, 3)

    def add(case_id, arg, **kwargs):
        full = dict(inputs=[X, X], targets=[X, X], weights=[1.0, 0.5])
        full.update(kwargs)
        cases.append((f"style_loss-{case_id}", arg, full))

    for name in ("inputs", "targets"):
        for kind, value in NOT_TENSORS.items():
            add(f"{name}={kind}", name, **{name: value})
            for i in (0, 1):
                add(f"{name}[{i}]={kind}", f"{name}[{i}]", **{name: _pair(X, value, i)})
        for count in (1, 3):
            add(f"{name}-length-{count}", "targets", **{name: [X] * count})
        for i in (0, 1):
            for dtype, bad in WRONG_DTYPES.items():
                add(f"{name}[{i}]-{dtype}", f"{name}[{i}]", **{name: _pair(X, bad, i)})
            add(f"{name}[{i}]-meta", f"{name}[{i}]" if name == "targets" or i else "targets[0]",
                **{name: _pair(X, X.to("meta"), i)})
    add("inputs=[]", "inputs", inputs=[], targets=[], weights=[])
    add("weights-length-3", "weights", weights=[1.0] * 3)
    for i in (0, 1):
        add(f"weights[{i}]=nan", f"weights[{i}]", weights=_pair(1.0, math.nan, i))
        for shape in ((2,), (3,), (2, 3, 4, 5), (2, 4, 4, 4), (3, 3, 4, 4)):  # C differs too
            add(f"targets[{i}]-shape{shape}", f"targets[{i}]", targets=_pair(X, _t(*shape), i))
        for shape in ((2, 3, 4), (3, 3, 3), (2, 4, 4), (3, 3), (2, 3, 3, 1), (6, 6)):
            add(f"gram-targets[{i}]-shape{shape}", f"targets[{i}]", target_is_gram=True,
                targets=_pair(gram, _t(*shape), i))
        add(f"gram-targets[{i}]-int", f"targets[{i}]", target_is_gram=True,
            targets=_pair(gram1, gram1.int(), i))
        add(f"inputs[{i}]-1-dim", f"inputs[{i}]", inputs=_pair(X, _t(4), i),
            targets=_pair(X, _t(4), i))
    add("nchw-gram-per-sample-shape", "targets[0]", target_is_gram=True, normalization="nchw",
        targets=[gram, _t(6, 6)])
    add("per_sample-batch", "inputs[1]", reduction="per_sample", inputs=[X, _t(3, 3, 4, 4)],
        targets=[X, _t(3, 3, 4, 4)])
    add("per_sample-nchw", "reduction", reduction="per_sample", normalization="nchw")
    add("inputs[1]-float64", "inputs[1]", inputs=[X, X.double()], targets=[X, X.double()])
    for arg, good, unknown in (("criterion", "l1", "charbonnier"), ("reduction", "mean", "none"),
                               ("normalization", "chw", "c")):
        for kind, value in {"None": None, "int": 1, "list": [good], "upper": good.upper(),
                            "unknown": unknown, "empty": ""}.items():
            add(f"{arg}={kind}", arg, **{arg: value})
    for kind, value in {"None": None, "int": 1, "str": "yes"}.items():
        add(f"target_is_gram={kind}", "target_is_gram", target_is_gram=value)
    all_meta = [(f"{case_id}-all-meta", arg,
                 {k: _to_meta(v) if k in ("inputs", "targets") else v for k, v in kwargs.items()})
                for case_id, arg, kwargs in cases if "meta" not in case_id]
    return cases + all_meta


def gram_cases():
    """(id, argument the message must name, kwargs of gram_matrix)."""
    cases = [("gram_matrix-features=list", "features", dict(features=[X])),
             ("gram_matrix-features-1-dim", "features", dict(features=_t(4))),
             ("gram_matrix-features-0-dim", "features", dict(features=_t()))]
    for dtype, bad in WRONG_DTYPES.items():
        cases.append((f"gram_matrix-features-{dtype}", "features", dict(features=bad)))
    for kind, value in {"None": None, "int": 1, "unknown": "n", "upper": "CHW"}.items():
        cases.append((f"gram_matrix-normalization={kind}", "normalization",
                      dict(features=X, normalization=value)))
    return cases


def adversarial_cases():
    """(id, argument the message must name, (function name, kwargs)) of adversarial_loss and
    discriminator_loss."""
    cases = []
    logits = [_t(2, 1, 5, 5), _t(2, 1, 3, 3)]

    def add(case_id, arg, fn="adversarial_loss", **kwargs):
        full = (dict(inputs=logits, target_is_real=True) if fn == "adversarial_loss"
                else dict(real_inputs=logits, fake_inputs=logits[:1]))
        full.update(kwargs)
        cases.append((f"{fn}-{case_id}", arg, (fn, full)))

    for name, fn in (("inputs", "adversarial_loss"), ("real_inputs", "discriminator_loss"),
                     ("fake_inputs", "discriminator_loss")):
        for kind, value in NOT_TENSORS.items():
            add(f"{name}={kind}", name, fn, **{name: value})
        add(f"{name}=[]", name, fn, **{name: []})
        add(f"{name}-nested", f"{name}[0]", fn, **{name: [logits]})
        for dtype, bad in WRONG_DTYPES.items():
            add(f"{name}[1]-{dtype}", f"{name}[1]", fn, **{name: [logits[0], bad]})
        add(f"{name}[1]-meta", f"{name}[1]", fn, **{name: [logits[0], logits[1].to("meta")]})
        add(f"{name}[1]-float64", f"{name}[1]", fn, **{name: [logits[0], logits[1].double()]})
        add(f"{name}[1]-empty", f"{name}[1]", fn, **{name: [logits[0], _t(2, 1, 0, 3)]})
        add(f"{name}[1]-batch", f"{name}[1]", fn, reduction="per_sample",
            **{name: [logits[0], _t(3, 1, 3, 3)]})
        add(f"{name}[0]-0-dim", f"{name}[0]", fn, reduction="per_sample", **{name: [_t()]})
    for fn in ("adversarial_loss", "discriminator_loss"):
        for arg, good, unknown in (("gan_type", "vanilla", "nsgan"), ("aggregation", "mean", "max"),
                                   ("reduction", "mean", "sum")):
            for kind, value in {"None": None, "int": 1, "upper": good.upper(),
                                "unknown": unknown}.items():
                add(f"{arg}={kind}", arg, fn, **{arg: value})
        for arg in ("real_label", "fake_label", "weight"):
            for kind, value in {**NOT_NUMBERS, "nan": math.nan, "inf": math.inf}.items():
                add(f"{arg}={kind}", arg, fn, **{arg: value})
        add("weight=-1", "weight", fn, weight=-1.0)
    for arg in ("target_is_real", "is_disc"):
        not_bools = {"None": None, "int": 1, "str": "yes", "tensor": torch.tensor(True)}
        for kind, value in not_bools.items():
            add(f"{arg}={kind}", arg, **{arg: value})
    all_meta = [(f"{case_id}-all-meta", arg, (fn, {k: _to_meta(v) if "inputs" in k else v
                                                   for k, v in kwargs.items()}))
                for case_id, arg, (fn, kwargs) in cases if "meta" not in case_id]
    return cases + all_meta


def _to_meta(value):
    if isinstance(value, torch.Tensor):
        return value.to("meta")
    return [_to_meta(v) for v in value] if isinstance(value, list) else value


PIXEL = {"L1Loss": modules.L1Loss, "MSELoss": modules.MSELoss,
         "CharbonnierLoss": modules.CharbonnierLoss}


def module_cases():
    """(id, argument the message must name, callable that makes the module and calls it)."""
    cases = []

    def add(case_id, arg, call):
        cases.append((case_id, arg, call))

    for name, cls in PIXEL.items():
        for kind, value in {**NOT_NUMBERS, **BAD_NON_NEGATIVE}.items():
            add(f"{name}(loss_weight={kind})", "loss_weight",
                lambda c=cls, v=value: c(loss_weight=v))
        for kind, value in {"None": None, "int": 1, "unknown": "batch"}.items():
            add(f"{name}(reduction={kind})", "reduction", lambda c=cls, v=value: c(reduction=v))
        for reduction in ("mean", "sum", "none"):
            def forward(pred=X, target=X, weight=None, c=cls, r=reduction):
                return c(reduction=r)(pred, target, weight)

            bad = {**{f"pred={k}": ("pred", dict(pred=v)) for k, v in NOT_TENSORS.items()},
                   **{f"target={k}": ("target", dict(target=v)) for k, v in NOT_TENSORS.items()},
                   "pred=list": ("pred", dict(pred=[X])),
                   "weight=str": ("weight", dict(weight="w")),
                   "weight=list": ("weight", dict(weight=[MASK])),
                   "target-shape": ("target", dict(target=_t(2, 3, 4, 5))),
                   "target-float64": ("target", dict(target=X.double())),
                   "target-meta": ("target", dict(target=X.to("meta"))),
                   "weight-shape": ("weight", dict(weight=_t(2, 2, 4, 4))),
                   "weight-int": ("weight", dict(weight=MASK.int())),
                   "weight-meta": ("weight", dict(weight=MASK.to("meta")))}
            for dtype, tensor in WRONG_DTYPES.items():
                bad[f"pred-{dtype}"] = ("pred", dict(pred=tensor, target=tensor))
            for case_id, (arg, kwargs) in bad.items():
                add(f"{name}({reduction})-{case_id}", arg, lambda f=forward, k=kwargs: f(**k))
    for kind, value in {**NOT_NUMBERS, "zero": 0.0, **BAD_NON_NEGATIVE}.items():
        add(f"CharbonnierLoss(eps={kind})", "eps", lambda v=value: modules.CharbonnierLoss(eps=v))

    vgg_x = [_t(2, 4, 8 >> i, 8 >> i) for i in range(5)]
    vgg_weights = {"float": ("weights", 1.0), "empty": ("weights", []),
                   "None-entry": ("weights[0]", [None] * 5), "str-entry": ("weights[0]", ["1"] * 5),
                   "negative": ("weights[1]", [1.0, -1.0]), "nan": ("weights[0]", [math.nan])}
    for kind, (arg, value) in vgg_weights.items():
        add(f"VGGLoss(weights={kind})", arg, lambda v=value: modules.VGGLoss(weights=v))
    for kind, value in {"None": None, "unknown": "huber"}.items():
        add(f"VGGLoss(criterion={kind})", "criterion", lambda v=value: modules.VGGLoss(criterion=v))
    with_none = vgg_x[:2] + [None] + vgg_x[3:]
    vgg_bad = {"images": ("x_features", _t(5, 3, 8, 8), _t(5, 3, 8, 8)),
               "y-image": ("y_features", vgg_x, _t(5, 3, 8, 8)),
               "x-None-entry": ("x_features[2]", with_none, vgg_x),
               "y-None-entry": ("y_features[2]", vgg_x, with_none),
               "x-None": ("x_features", None, vgg_x),
               "x-short": ("x_features", vgg_x[:4], vgg_x),
               "y-short": ("y_features", vgg_x, vgg_x[:4]),
               "y-shape": ("y_features[3]", vgg_x, vgg_x[:3] + [_t(2, 4, 2, 1), vgg_x[4]]),
               "y-float64": ("y_features[4]", vgg_x, vgg_x[:4] + [vgg_x[4].double()]),
               "x-int": ("x_features[0]", [vgg_x[0].int()] + vgg_x[1:], vgg_x),
               "y-meta": ("y_features[1]", vgg_x, [vgg_x[0], vgg_x[1].to("meta")] + vgg_x[2:])}
    for case_id, (arg, x, y) in vgg_bad.items():
        add(f"VGGLoss-{case_id}", arg, lambda x=x, y=y: modules.VGGLoss()(x, y))

    fm_ctor = {"lambda_feat": {**NOT_NUMBERS, **BAD_NON_NEGATIVE},
               "num_D": {"zero": 0, "negative": -1, "float": 2.5, "str": "2", "bool": True},
               "n_layers_D": {"zero": 0, "negative": -1, "None": None, "float": 1.5},
               "style": {"None": None, "unknown": "hd"}}
    for arg, values in fm_ctor.items():
        for kind, value in values.items():
            add(f"FeatureMatchingLoss({arg}={kind})", arg,
                lambda a=arg, v=value: modules.FeatureMatchingLoss(**{a: v}))
    scale = [_t(1, 4, 8, 8), _t(1, 8, 4, 4), _t(1, 1, 3, 3)]
    good = [scale, [t[..., :4, :4] for t in scale]]
    fm_bad = {"empty": ("pred_fake", [], []),
              "flat": ("pred_fake[0]", scale, scale),
              "tensor": ("pred_fake", scale[0], scale[0]),
              "None": ("pred_fake", None, good),
              "logits-only": ("pred_fake[0]", [[t[-1]] for t in good], [[t[-1]] for t in good]),
              "scales": ("pred_real", good, good[:1]),
              "layers": ("pred_real[1]", good, [good[0], good[1][:2]]),
              "None-entry": ("pred_real[1][0]", good, [good[0], [None] + good[1][1:]]),
              "shape": ("pred_real[0][1]", good, [[scale[0], _t(1, 8, 4, 5), scale[2]], good[1]]),
              "int": ("pred_fake[1][1]", [good[0], [good[1][0], good[1][1].int(), good[1][2]]],
                      good),
              "meta": ("pred_real[1][0]", good, [good[0], [good[1][0].to("meta")] + good[1][1:]])}
    for case_id, (arg, fake, real) in fm_bad.items():
        add(f"FeatureMatchingLoss-{case_id}", arg,
            lambda f=fake, r=real: modules.FeatureMatchingLoss()(f, r))
    add("FeatureMatchingLoss-num_D", "num_D",
        lambda: modules.FeatureMatchingLoss(num_D=3)(good, good))
    # Style modules: features that do not match the cached style Grams or the gt features.
    style = [_t(1, 3, 4, 4), _t(1, 5, 2, 2)]
    feats = [_t(2, 3, 4, 4), _t(2, 5, 2, 2)]
    style_bad = {"channels": ("features[1]", [feats[0], _t(2, 4, 2, 2)]),
                 "int": ("features[0]", [feats[0].int(), feats[1]]),
                 "one-dim": ("features[1]", [feats[0], _t(5)]),
                 "meta": ("features[1]", [feats[0], feats[1].to("meta")])}
    for case_id, (arg, value) in style_bad.items():
        add(f"StyleLoss-{case_id}", arg, lambda v=value: modules.StyleLoss(style)(v))
    names = {"relu1_2": 1.0, "relu2_2": 0.5}
    gt = dict(zip(names, feats))
    percep_bad = {"shape": ("gt_features['relu2_2']", {**gt, "relu2_2": _t(2, 5, 2, 3)}),
                  "dtype": ("gt_features['relu1_2']", {**gt, "relu1_2": feats[0].double()})}
    for case_id, (arg, value) in percep_bad.items():
        add(f"PerceptualStyleLoss-{case_id}", arg,
            lambda v=value: modules.PerceptualStyleLoss(names, style_weight=1.0)(gt, v))
    add("PiqStyleLoss-shape", "y_features[0]",
        lambda: modules.PiqStyleLoss()([feats[0]], [_t(2, 4, 4, 4)]))
    add("StyleLossLayer-shape", "input",
        lambda: modules.StyleLossLayer(feats[0])(_t(2, 4, 4, 4)))
    # Adversarial drop-ins: unknown types, outputs of the wrong dtype or device, hinge's G target.
    logit = _t(2, 1, 4, 4)
    add("GANLoss(gan_type=unknown)", "gan_type", lambda: modules.GANLoss("nsgan"))
    add("GANLoss-int", "input", lambda: modules.GANLoss("lsgan")(logit.int(), True))
    add("GANLoss-list-int", "input[1]",
        lambda: modules.GANLoss("lsgan")([logit, logit.int()], True))
    add("GANLoss-list-of-lists-meta", "input[1][-1]",
        lambda: modules.GANLoss("hinge")([[logit], [logit, logit.to("meta")]], True,
                                         is_disc=True))
    add("SPADEGANLoss(gan_mode=unknown)", "gan_mode", lambda: modules.SPADEGANLoss("lsgan"))
    add("SPADEGANLoss-hinge-G-fake", "target_is_real",
        lambda: modules.SPADEGANLoss("hinge")(logit, False, for_discriminator=False))
    add("CycleGANLoss(gan_mode=unknown)", "gan_mode", lambda: modules.CycleGANLoss("hinge"))
    add("hinge_d_loss-dtype", "logits_fake", lambda: modules.hinge_d_loss(logit, logit.double()))
    return cases


def all_cases():
    """(id, argument the message must name, run(path) for path 'compiled' or 'reference')."""
    cases = []
    for case_id, arg, kwargs in functional_cases():
        impls = {"compiled": functional.feature_loss, "reference": reference.feature_loss}
        cases.append((case_id, arg, lambda path, k=kwargs, i=impls: i[path](**k)))
    for op, family in (("style_loss", style_cases()), ("gram_matrix", gram_cases())):
        impls = {"compiled": getattr(functional, op), "reference": getattr(reference, op)}
        for case_id, arg, kwargs in family:
            cases.append((case_id, arg, lambda path, k=kwargs, i=impls: i[path](**k)))
    for case_id, arg, (fn, kwargs) in adversarial_cases():
        impls = {"compiled": getattr(functional, fn), "reference": getattr(reference, fn)}
        cases.append((case_id, arg, lambda path, k=kwargs, i=impls: i[path](**k)))
    for case_id, arg, call in module_cases():
        cases.append((case_id, arg, lambda path, c=call: _on_path(path, c)))
    return cases


def _on_path(path, call):
    if path == "compiled":
        return call()
    with _reference_forced():
        return call()


@contextlib.contextmanager
def _reference_forced():
    """functional (and so every module) runs the reference, as without an extension."""
    use = _ext.use_extension
    _ext.use_extension = lambda op, device: False
    try:
        yield
    finally:
        _ext.use_extension = use


def _outcome(run, path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", functional.FallbackWarning)  # the compiled path, really
        try:
            run(path)
        except Exception as e:  # noqa: BLE001 (every type is recorded and judged by the test)
            return {"type": type(e).__name__, "message": str(e)}
    return {"type": None, "message": "returned a result"}


ABORT_AT = "GANLOSS_TEST_ABORT_AT"  # a case id: the subprocess aborts there (tests the isolation)


def main(start: int, stop: int):
    """Runs cases[start:stop], one JSON line each, flushed before the next case starts."""
    print(json.dumps({"extension": ganloss_cuda.load_error}), flush=True)
    for case_id, _, run in all_cases()[start:stop]:
        if case_id == os.environ.get(ABORT_AT):
            os.abort()
        result = {"id": case_id, "compiled": _outcome(run, "compiled"),
                  "reference": _outcome(run, "reference")}
        print(json.dumps(result), flush=True)


def run_isolated(count: int):
    """Results of the first count cases by id; a case that ended its process maps to
    {"crash": ...}."""
    ids = [case_id for case_id, _, _ in all_cases()][:count]
    results, start = {}, 0
    while start < len(ids):
        proc, _ = run_python([__file__, str(start), str(count)], os.environ, timeout=300)
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        assert lines and lines[0].get("extension", "") is None, (
            f"extension not loaded in the subprocess: {lines[:1]} {proc.stderr[-2000:]}")
        for line in lines[1:]:
            results[line["id"]] = line
        start += len(lines) - 1
        if start < len(ids):  # the process died during ids[start]
            results[ids[start]] = {"crash": f"exit {proc.returncode}: {proc.stderr[-2000:]}"}
            start += 1
    return results


@pytest.fixture(scope="module")
def results():
    return run_isolated(len(CASES))


CASES = all_cases()
ALLOWED = ("ValueError", "TypeError")


def test_at_least_200_cases():
    assert len(CASES) >= 200
    assert len({case_id for case_id, _, _ in CASES}) == len(CASES)


def test_a_crash_fails_its_case_and_the_run_goes_on(monkeypatch):
    ids = [case_id for case_id, _, _ in CASES[:3]]
    monkeypatch.setenv(ABORT_AT, ids[1])
    results = run_isolated(3)
    assert "crash" in results[ids[1]]
    assert "crash" not in results[ids[0]] and "crash" not in results[ids[2]]


@pytest.mark.parametrize("case_id,arg", [(c, a) for c, a, _ in CASES], ids=[c for c, _, _ in CASES])
def test_bad_input(results, case_id, arg):
    result = results[case_id]
    assert "crash" not in result, result.get("crash")
    compiled, ref = result["compiled"], result["reference"]
    for path, outcome in (("compiled", compiled), ("reference", ref)):
        assert outcome["type"] in ALLOWED, f"{path}: {outcome['type']}: {outcome['message']}"
        assert re.search(rf"(?<![\w\[]){re.escape(arg)}(?![\w\[])", outcome["message"]), (
            f"{path}: message does not name {arg}: {outcome['message']}")
    assert compiled == ref


def _reference_must_not_run(*args, **kwargs):
    raise AssertionError("meta inputs fell back to the reference")


@pytest.mark.parametrize("reduction", ["mean", "sum", "per_sample"])
def test_all_meta_inputs_run_the_fake_kernel(monkeypatch, reduction):
    """Meta tensors (shape inference without data) take the compiled op's fake kernel, with no
    FallbackWarning; the gradient has the input's shape."""
    monkeypatch.setattr(reference, "feature_loss", _reference_must_not_run)
    x = torch.ones(2, 3, 4, 4, device="meta", requires_grad=True)
    mask = _t(2, 1, 4, 4, device="meta")
    with warnings.catch_warnings():
        warnings.simplefilter("error", functional.FallbackWarning)
        loss = functional.feature_loss([x, x[:, :1]], [x.detach(), x[:, :1].detach()],
                                       masks=[mask, None], reduction=reduction)
        loss.sum().backward()
    assert loss.device.type == "meta"
    assert loss.shape == ((2,) if reduction == "per_sample" else ())
    assert x.grad.shape == x.shape


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
