"""Drop-in parity of the style modules: each gives the value and gradients of the anchor formula it
replaces, written out here from the anchors' code: pytorch/examples fast_neural_style
(neural_style/utils.py gram_matrix, neural_style.py train), BasicSR basicsr/losses/basic_loss.py
PerceptualLoss (and mmagic's layer_weights_style), piq piq/perceptual.py StyleLoss, and the PyTorch
neural-style tutorial's gram_matrix / StyleLoss. Under fp16 the anchors form the un-normalised Gram
in 16 bits and overflow 65504 on realistic features (about 3, 128x128, C=64); the modules give the
float64 answer there."""
from collections import namedtuple

import pytest
import torch
import torch.nn.functional as TF
from torch import nn

import ganloss_cuda
from conftest import DEVICES, GRAD_ATOL, GRAD_RTOL, LOSS_RTOL, assert_close
from ganloss_cuda import MSELoss, PerceptualStyleLoss, PiqStyleLoss, StyleLoss, StyleLossLayer

F64 = torch.float64
LOW_DTYPES = [pytest.param(torch.float32, id="f32"), pytest.param(torch.float16, id="f16"),
              pytest.param(torch.bfloat16, id="bf16")]
# The example's mse_loss(gm_y, gm_s[:n_batch]) broadcasts a batch-1 style Gram, with this warning.
pytestmark = pytest.mark.filterwarnings("ignore:Using a target size:UserWarning")


# ---- the anchors, verbatim ------------------------------------------------------------------------

def fns_gram_matrix(y):  # fast_neural_style/neural_style/utils.py
    (b, ch, h, w) = y.size()
    features = y.view(b, ch, w * h)
    features_t = features.transpose(1, 2)
    gram = features.bmm(features_t) / (ch * h * w)
    return gram


def fns_style_loss(features_y, gram_style, n_batch, style_weight):  # neural_style.py train()
    style_loss = 0.
    for ft_y, gm_s in zip(features_y, gram_style):
        gm_y = fns_gram_matrix(ft_y)
        style_loss += TF.mse_loss(gm_y, gm_s[:n_batch, :, :])
    style_loss *= style_weight
    return style_loss


def basicsr_gram_mat(x):  # basicsr/losses/basic_loss.py PerceptualLoss._gram_mat
    n, c, h, w = x.size()
    features = x.view(n, c, w * h)
    features_t = features.transpose(1, 2)
    gram = features.bmm(features_t) / (c * h * w)
    return gram


def basicsr_perceptual(x_features, gt_features, layer_weights, perceptual_weight, style_weight,
                       criterion_type, layer_weights_style=None):
    """PerceptualLoss.forward after the VGG (gt_features = vgg(gt.detach())); 'l2' as the
    nn.MSELoss BasicSR means (it writes torch.nn.L2loss, which does not exist); mmagic's
    layer_weights_style weights the style term."""
    criterion = {"l1": torch.nn.L1Loss(), "l2": torch.nn.MSELoss(), "fro": None}[criterion_type]
    gt_features = {k: v.detach() for k, v in gt_features.items()}
    if perceptual_weight > 0:
        percep_loss = 0
        for k in layer_weights.keys():
            if criterion_type == "fro":
                percep_loss += torch.norm(x_features[k] - gt_features[k], p="fro") * layer_weights[k]
            else:
                percep_loss += criterion(x_features[k], gt_features[k]) * layer_weights[k]
        percep_loss *= perceptual_weight
    else:
        percep_loss = None
    if style_weight > 0:
        layer_weights_style = layer_weights_style or layer_weights
        style_loss = 0
        for k in layer_weights_style.keys():
            if criterion_type == "fro":
                style_loss += torch.norm(
                    basicsr_gram_mat(x_features[k]) - basicsr_gram_mat(gt_features[k]), p="fro") * layer_weights_style[k]
            else:
                style_loss += criterion(basicsr_gram_mat(x_features[k]), basicsr_gram_mat(
                    gt_features[k])) * layer_weights_style[k]
        style_loss *= style_weight
    else:
        style_loss = None
    return percep_loss, style_loss


def piq_gram_matrix(x):  # piq/perceptual.py StyleLoss.gram_matrix
    B, C, H, W = x.size()
    gram = []
    for i in range(B):
        features = x[i].view(C, H * W)
        gram.append(torch.mm(features, features.t()).unsqueeze(0))
    return torch.stack(gram)


def piq_style(x_features, y_features, weights, distance, reduction):
    """piq ContentLoss.forward with StyleLoss.compute_distance, after the feature extractor."""
    dist = {"mse": nn.MSELoss(reduction="none"), "mae": nn.L1Loss(reduction="none")}[distance]
    x_gram = [piq_gram_matrix(x) for x in x_features]
    y_gram = [piq_gram_matrix(x) for x in y_features]
    distances = [dist(x, y) for x, y in zip(x_gram, y_gram)]
    weights = [torch.tensor(w) for w in weights]
    loss = torch.cat([(d * w.to(d)).mean(dim=[2, 3]) for d, w in zip(distances, weights)], dim=1).sum(dim=1)
    return {"none": loss, "mean": loss.mean(dim=0), "sum": loss.sum(dim=0)}[reduction]


def tutorial_gram_matrix(input):  # PyTorch "Neural Transfer Using PyTorch" tutorial
    a, b, c, d = input.size()
    features = input.view(a * b, c * d)
    G = torch.mm(features, features.t())
    return G.div(a * b * c * d)


class TutorialStyleLoss(nn.Module):
    def __init__(self, target_feature):
        super().__init__()
        self.target = tutorial_gram_matrix(target_feature).detach()

    def forward(self, input):
        G = tutorial_gram_matrix(input)
        self.loss = TF.mse_loss(G, self.target)
        return input


# ---- helpers -----------------------------------------------------------------------------------

VggOutputs = namedtuple("VggOutputs", ["relu1_2", "relu2_2", "relu3_3", "relu4_3"])


def vgg16_features(batch, size=16, dtype=F64, device="cpu", requires_grad=True, width=64):
    """Shapes of VGG16 relu1_2, relu2_2, relu3_3, relu4_3 (fast-neural-style's layers) with width
    channels in the first (VGG's 64; less for speed), ReLU-like values about 1."""
    shapes = [(batch, width * 2 ** i, size >> i, size >> i) for i in range(4)]
    return VggOutputs(*[torch.rand(s, dtype=dtype, device=device).mul(2).requires_grad_(requires_grad)
                        for s in shapes])


def realistic_pair(batch, dtype):
    """Two feature tensors in dtype, each one 64-channel 128x128 layer of values about 3 (uniform
    on [0, 6)): the un-normalised Gram's diagonal is about 16384 * 12 > 65504."""
    x = (torch.rand(batch, 64, 128, 128) * 6).to(dtype)
    y = (torch.rand(batch, 64, 128, 128) * 6).to(dtype)
    return x, y


def leaf(t, dtype=None):
    return t.detach().to(dtype or t.dtype).requires_grad_()


def grads_match(ours, theirs, inputs, rtol, atol=0.0):
    for a, b in zip(torch.autograd.grad(ours, inputs, retain_graph=True),
                    torch.autograd.grad(theirs, inputs)):
        assert_close(a, b, rtol, "grad", atol)


def overflow_check(ours_fn, anchor_fn, xs, dtype):
    """ours_fn on 16-bit leaves is finite and gives the float64 anchor's value and gradients on the
    same rounded inputs; the anchor itself in 16 bits is not finite (fp16 only: bf16 has the
    range, it loses precision instead)."""
    low = [leaf(x, dtype) for x in xs]
    exact = [leaf(x, F64) for x in xs]
    loss = ours_fn(low)
    ref = anchor_fn(exact)
    assert loss.dtype == torch.float32 and torch.isfinite(loss).all()
    assert_close(loss, ref, LOSS_RTOL[dtype], "loss")
    for a, b in zip(torch.autograd.grad(loss.sum(), low), torch.autograd.grad(ref.sum(), exact)):
        assert a.dtype == dtype and torch.isfinite(a).all()
        assert_close(a, b, GRAD_RTOL[dtype], "grad", GRAD_ATOL[dtype])
    if dtype == torch.float16:
        with torch.no_grad():
            assert not torch.isfinite(anchor_fn([x.to(dtype) for x in xs])).all()


# ---- StyleLoss: fast-neural-style ----------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("style_batch", [1, 4], ids=["style_b1", "style_repeated"])
def test_fast_neural_style_content_and_style(device, style_batch):
    """The example's training step, content and style lines, with its weights (1e5, 1e10); the
    style features repeated to the batch as in the example (or batch 1); a last, smaller batch."""
    style = vgg16_features(1, device=device, requires_grad=False, width=32)
    style = VggOutputs(*[t.repeat(style_batch, 1, 1, 1) for t in style])
    gram_style = [fns_gram_matrix(y) for y in style]
    module = StyleLoss(style, style_weight=1e10)
    for n_batch in (4, 3):
        features_y = vgg16_features(n_batch, device=device, width=32)
        features_x = vgg16_features(n_batch, device=device, requires_grad=False, width=32)
        content_weight = 1e5
        content_loss = content_weight * TF.mse_loss(features_y.relu2_2, features_x.relu2_2)
        style_loss = fns_style_loss(features_y, gram_style, n_batch, 1e10)
        ours_content = MSELoss(loss_weight=content_weight)(features_y.relu2_2, features_x.relu2_2)
        ours_style = module(features_y)
        assert_close(ours_style, style_loss, 1e-12, "style loss")
        assert_close(ours_content + ours_style, content_loss + style_loss, 1e-12, "total loss")
        grads_match(ours_content + ours_style, content_loss + style_loss, list(features_y), 1e-12)


def test_style_grams_computed_once(monkeypatch):
    """gram_matrix runs once per layer at construction, never in forward; forward is one fused
    style_loss call. The cached Grams are the example's gram_style, float32 buffers."""
    calls = {"gram_matrix": 0, "style_loss": 0}
    for name in calls:
        original = getattr(ganloss_cuda.functional, name)

        def counted(*args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            assert _name == "gram_matrix" or kwargs["target_is_gram"]
            return _original(*args, **kwargs)
        monkeypatch.setattr(ganloss_cuda.functional, name, counted)
    style = vgg16_features(1, dtype=torch.float32, width=16)
    module = StyleLoss(style)
    assert calls == {"gram_matrix": 4, "style_loss": 0}
    for _ in range(3):
        module(vgg16_features(2, dtype=torch.float32, width=16)).backward()
    assert calls == {"gram_matrix": 4, "style_loss": 3}
    assert [name for name, _ in module.named_buffers()] == [f"style_gram_{i}" for i in range(4)]
    for g, y in zip(module.style_grams, style):
        assert g.dtype == torch.float32 and g.shape == (1, y.shape[1], y.shape[1])
        assert not g.requires_grad
        assert_close(g, fns_gram_matrix(y.detach().double()), 1e-6, "style gram")
    assert all(y.grad is None for y in style)


def test_style_loss_from_grams_set_style_and_state_dict():
    style = vgg16_features(1, requires_grad=False, width=16)
    other = vgg16_features(1, requires_grad=False, width=16)
    grams = [fns_gram_matrix(y) for y in style]
    features_y = vgg16_features(2, requires_grad=False, width=16)
    from_features = StyleLoss(style, style_weight=2.0)
    from_grams = StyleLoss(style_weight=2.0, style_grams=grams)
    expected = fns_style_loss(features_y, grams, 2, 2.0)
    assert_close(from_features(features_y), expected, 1e-12, "from features")
    assert_close(from_grams(features_y), expected, 1e-12, "from grams")
    grams[0].mul_(2)  # the module keeps its own copy
    assert_close(from_grams(features_y), expected, 1e-12, "after the caller's grams changed")

    from_grams.set_style(other)  # replaced: the new style's loss
    other_loss = fns_style_loss(features_y, [fns_gram_matrix(y) for y in other], 2, 2.0)
    assert_close(from_grams(features_y), other_loss, 1e-12, "after set_style")
    from_grams.load_state_dict(from_features.state_dict())  # back to the first style
    assert_close(from_grams(features_y), expected, 1e-12, "after load_state_dict")

    from_grams.set_style(style[:2])  # fewer layers: the old buffers go
    assert list(from_grams.state_dict()) == ["style_gram_0", "style_gram_1"]
    with pytest.raises(ValueError, match="features has 4 tensors but the style has 2 layers"):
        from_grams(features_y)
    assert_close(from_grams(features_y[:2]), fns_style_loss(
        features_y[:2], [fns_gram_matrix(y) for y in style[:2]], 2, 2.0), 1e-12, "two layers")


@pytest.mark.parametrize("device", DEVICES)
def test_style_loss_to(device):
    """.to() moves and casts the cached Grams like any buffer."""
    module = StyleLoss(vgg16_features(1, dtype=torch.float32, requires_grad=False, width=16))
    module.to(device)
    assert all(g.device.type == device and g.dtype == torch.float32 for g in module.style_grams)
    features = vgg16_features(2, dtype=torch.float32, device=device, width=16)
    module(features).backward()
    module.double()
    assert all(g.dtype == F64 for g in module.style_grams)


def test_style_loss_errors_name_its_arguments():
    module = StyleLoss(vgg16_features(1, requires_grad=False))
    features = list(vgg16_features(2))
    with pytest.raises(ValueError, match=r"style_grams\[1\] has shape \(1, 128, 128\) but the Gram "
                                         r"of features\[1\] \(2, 64, 8, 8\)"):
        module(features[:1] + [features[0][:, :, :8, :8]] + features[2:])
    repeated = StyleLoss(vgg16_features(2, requires_grad=False))  # two Grams: at most 2 samples
    with pytest.raises(ValueError, match=r"style_grams\[0\] has shape \(2, 64, 64\)"):
        repeated(vgg16_features(3))
    with pytest.raises(TypeError, match=r"features must be a list of Tensors, got Tensor"):
        module(features[0])
    with pytest.raises(TypeError, match=r"style_features\[1\] must be float16, bfloat16, float32 "
                                        r"or float64, got torch.int64"):
        StyleLoss([features[0], torch.ones(1, 3, 4, 4, dtype=torch.long)])


@pytest.mark.parametrize("dtype", LOW_DTYPES)
def test_style_loss_16bit_features(dtype):
    """Realistic relu1_2 features: ours gives the float64 answer (fp32 Grams); the example's
    gram_matrix under fp16 (what autocast runs bmm in) overflows."""
    x, style = realistic_pair(1, dtype)
    module = StyleLoss([style[:1].float()], style_weight=1e10)
    gram_style = [fns_gram_matrix(style[:1].double())]
    overflow_check(lambda xs: module(xs), lambda xs: fns_style_loss(
        xs, [g.to(xs[0].dtype) for g in gram_style], xs[0].shape[0], 1e10), [x], dtype)


# ---- PerceptualStyleLoss: BasicSR / mmagic PerceptualLoss -----------------------------------------

def vgg19_dict(batch=2, size=16, device="cpu", dtype=F64):
    """BasicSR VGGFeatureExtractor output for layer_weights' layers (conv*_4: VGG19)."""
    shapes = {"conv1_2": (64, size), "conv2_2": (128, size // 2), "conv3_4": (256, size // 4),
              "conv4_4": (512, size // 8), "conv5_4": (512, size // 16)}
    return {k: torch.randn(batch, c, s, s, dtype=dtype, device=device).requires_grad_()
            for k, (c, s) in shapes.items()}


LAYER_WEIGHTS = {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1, "conv4_4": 1, "conv5_4": 1}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("criterion", ["l1", "l2", "mse", "fro"])
@pytest.mark.parametrize("perceptual_weight,style_weight", [(1.0, 0.0), (0.0, 1.0), (1.0, 0.5)])
def test_basicsr_perceptual_loss(device, criterion, perceptual_weight, style_weight):
    x, gt = vgg19_dict(device=device), vgg19_dict(device=device)
    module = PerceptualStyleLoss(LAYER_WEIGHTS, perceptual_weight, style_weight, criterion)
    ours = module(x, gt)
    ref = basicsr_perceptual(x, gt, LAYER_WEIGHTS, perceptual_weight, style_weight,
                             "l2" if criterion == "mse" else criterion)
    for a, b, what in zip(ours, ref, ("percep_loss", "style_loss")):
        assert (a is None) == (b is None), what
        if b is not None:
            assert_close(a, b, 1e-12, what)
            grads_match(a, b, list(x.values()), 1e-12)
            no_grads = torch.autograd.grad(a, list(gt.values()), allow_unused=True)
            assert all(g is None for g in no_grads), "gt features must be detached"
    as_lists = module(list(x.values()), list(gt.values()))  # lists in layer_names order
    for a, b in zip(as_lists, ours):
        assert (a is None and b is None) or torch.equal(a, b)


def test_mmagic_layer_weights_style():
    """mmagic PerceptualLoss(layer_weights, layer_weights_style, style_weight=1.0, criterion):
    the style term on its own layers; the features hold both sets."""
    x, gt = vgg19_dict(), vgg19_dict()
    layer_weights, style = {"conv4_4": 1.0}, {"conv1_2": 1.0, "conv2_2": 0.5, "conv4_4": 2.0}
    module = PerceptualStyleLoss(layer_weights, style_weight=1.0, criterion="mse",
                                 layer_weights_style=style)
    assert module.layer_names == ["conv4_4", "conv1_2", "conv2_2"]
    x = {k: x[k] for k in module.layer_names}
    gt = {k: gt[k] for k in module.layer_names}
    ours = module(x, gt)
    ref = basicsr_perceptual(x, gt, layer_weights, 1.0, 1.0, "l2", style)
    for a, b, layers in zip(ours, ref, (layer_weights, style)):
        assert_close(a, b, 1e-12, "loss")
        grads_match(a, b, [x[k] for k in layers], 1e-12)
    with pytest.raises(ValueError, match=r"x_features has layers \['conv4_4', 'conv1_2'\] but the "
                                         r"loss weights layers \['conv4_4', 'conv1_2', 'conv2_2'\]"):
        module({k: x[k] for k in ["conv4_4", "conv1_2"]}, gt)


@pytest.mark.parametrize("dtype", LOW_DTYPES)
def test_basicsr_style_16bit_features(dtype):
    x, gt = realistic_pair(1, dtype)
    module = PerceptualStyleLoss({"conv1_2": 1.0}, perceptual_weight=0.0, style_weight=1.0)
    overflow_check(lambda xs: module({"conv1_2": xs[0]}, {"conv1_2": gt})[1],
                   lambda xs: basicsr_perceptual({"conv1_2": xs[0]}, {"conv1_2": gt.to(xs[0].dtype)},
                                                 {"conv1_2": 1.0}, 0.0, 1.0, "l1")[1], [x], dtype)


def test_perceptual_style_loss_errors_name_its_arguments():
    x, gt = vgg19_dict(), vgg19_dict()
    module = PerceptualStyleLoss(LAYER_WEIGHTS, style_weight=1.0)
    gt["conv2_2"] = gt["conv2_2"][:, :64]
    with pytest.raises(ValueError, match=r"gt_features\['conv2_2'\] has shape \(2, 64, 8, 8\) but "
                                         r"x_features\['conv2_2'\] has \(2, 128, 8, 8\)"):
        module(x, gt)
    with pytest.raises(ValueError, match=r"gt_features\[1\] has shape \(2, 64, 8, 8\)"):
        module(list(x.values()), list(gt.values()))
    with pytest.raises(ValueError, match=r"x_features has 4 tensors but the loss weights 5 layers"):
        module(list(x.values())[:4], list(gt.values())[:4])
    with pytest.raises(TypeError, match=r"x_features\['conv1_2'\] must be a Tensor, got list"):
        module({**x, "conv1_2": [x["conv1_2"]]}, gt)


# ---- PiqStyleLoss ----------------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("distance", ["mse", "mae"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_piq_style_loss(device, distance, reduction):
    """piq.StyleLoss on two layers (relu2_2, relu3_3 shapes) with per-layer weights; gradients flow
    to both feature sets, as in piq."""
    x, y = ([torch.rand(3, c, s, s, dtype=F64, device=device, requires_grad=True)
             for c, s in ((128, 8), (256, 4))] for _ in range(2))
    weights = [0.5, 2.0]
    loss = PiqStyleLoss(weights, distance, reduction)(x, y)
    ref = piq_style(x, y, weights, distance, reduction)
    assert_close(loss, ref, 1e-12, "loss")
    grads_match(loss.sum(), ref.sum(), x + y, 1e-12)


def test_piq_defaults_and_gram_matrix():
    x, y = torch.rand(2, 64, 8, 8, dtype=F64), torch.rand(2, 64, 8, 8, dtype=F64)
    assert_close(PiqStyleLoss()([x], [y]), piq_style([x], [y], [1.0], "mse", "mean"), 1e-12, "loss")
    gram = PiqStyleLoss.gram_matrix(x)
    assert gram.shape == (2, 1, 64, 64)
    assert_close(gram, piq_gram_matrix(x), 1e-12, "gram")
    with pytest.raises(ValueError, match=r"x must have at least 2 dims"):
        PiqStyleLoss.gram_matrix(torch.ones(3))


@pytest.mark.parametrize("dtype", LOW_DTYPES)
def test_piq_style_16bit_features(dtype):
    x, y = realistic_pair(2, dtype)
    module = PiqStyleLoss(reduction="none")
    overflow_check(lambda xs: module(xs[:1], xs[1:]),
                   lambda xs: piq_style(xs[:1], xs[1:], [1.0], "mse", "none"), [x, y], dtype)


# ---- StyleLossLayer: the PyTorch neural-style tutorial --------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", [1, 2])
def test_tutorial_style_loss_layer(device, batch):
    """The tutorial's StyleLoss inserted after a conv+ReLU: pass-through, .loss, and gradients to
    the image through it; style_score = sum of the layers' losses * style_weight (1e6)."""
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 16, 3, padding=1).to(device, F64)
    style_img = torch.rand(batch, 3, 12, 12, dtype=F64, device=device)
    target_feature = torch.relu(conv(style_img)).detach()
    ours, theirs = StyleLossLayer(target_feature), TutorialStyleLoss(target_feature)
    img = torch.rand(batch, 3, 12, 12, dtype=F64, device=device, requires_grad=True)
    out_ours = nn.Sequential(conv, nn.ReLU(), ours)(img)
    out_theirs = nn.Sequential(conv, nn.ReLU(), theirs)(img)
    assert torch.equal(out_ours, out_theirs)
    assert_close(ours.target, theirs.target, 1e-12, "target")
    assert_close(ours.loss, theirs.loss, 1e-12, "loss")
    grads_match(1e6 * ours.loss, 1e6 * theirs.loss, [img], 1e-12)
    assert list(ours.state_dict()) == ["target"]


@pytest.mark.parametrize("dtype", LOW_DTYPES)
def test_tutorial_style_16bit_features(dtype):
    x, y = realistic_pair(1, dtype)
    layer = StyleLossLayer(y.float())
    target = tutorial_gram_matrix(y.double())

    def ours(xs):
        assert layer(xs[0]) is xs[0]
        return layer.loss
    overflow_check(ours, lambda xs: TF.mse_loss(tutorial_gram_matrix(xs[0]), target.to(xs[0].dtype)),
                   [x], dtype)


def test_style_loss_layer_errors_name_its_arguments():
    layer = StyleLossLayer(torch.rand(1, 8, 4, 4))
    with pytest.raises(ValueError, match=r"target has shape \(8, 8\) but the Gram of input "
                                         r"\(2, 8, 4, 4\) with normalization 'nchw' must be \(16, 16\)"):
        layer(torch.rand(2, 8, 4, 4))
    with pytest.raises(TypeError, match="target_feature must be a Tensor, got list"):
        StyleLossLayer([torch.rand(1, 8, 4, 4)])


# ---- constructor arguments -----------------------------------------------------------------------

_FEATURES = [torch.rand(1, 4, 3, 3)]


@pytest.mark.parametrize("make,error,match", [
    (lambda: StyleLoss(), ValueError, "give exactly one of style_features"),
    (lambda: StyleLoss(_FEATURES, style_grams=[torch.eye(4)[None]]), ValueError, "give exactly one"),
    (lambda: StyleLoss([]), ValueError, "style_features must hold at least one tensor"),
    (lambda: StyleLoss(_FEATURES[0]), TypeError, "style_features must be a list of Tensors, got Tensor"),
    (lambda: StyleLoss(_FEATURES, style_weight=-1.0), ValueError,
     "style_weight must be a finite non-negative number, got -1"),
    (lambda: StyleLoss(_FEATURES, style_weight="1e10"), TypeError, "style_weight must be a number"),
    (lambda: StyleLoss(style_grams=[torch.ones(1, 4, 5)]), ValueError,
     r"style_grams\[0\] must be a \(B, C, C\) Gram matrix, got shape \(1, 4, 5\)"),
    (lambda: StyleLoss(style_grams=[torch.ones(1, 4, 4, dtype=torch.int32)]), TypeError,
     r"style_grams\[0\] must be float16, bfloat16, float32 or float64, got torch.int32"),
    (lambda: StyleLoss([torch.ones(4)]), ValueError, r"style_features\[0\] must have at least 2 dims"),
    (lambda: PerceptualStyleLoss(["conv5_4"]), TypeError, "layer_weights must be a dict of layer name"),
    (lambda: PerceptualStyleLoss({}), ValueError, "layer_weights must name at least one layer"),
    (lambda: PerceptualStyleLoss({"conv5_4": -1}), ValueError,
     r"layer_weights\['conv5_4'\] must be a finite non-negative number"),
    (lambda: PerceptualStyleLoss({"conv5_4": None}), TypeError, r"layer_weights\['conv5_4'\] must be a number"),
    (lambda: PerceptualStyleLoss({5: 1.0}), TypeError, "layer_weights key 5 must be a str"),
    (lambda: PerceptualStyleLoss({"conv5_4": 1}, layer_weights_style={"conv1_1": float("nan")}), ValueError,
     r"layer_weights_style\['conv1_1'\] must be a finite non-negative number"),
    (lambda: PerceptualStyleLoss({"conv5_4": 1}, criterion="l3"), ValueError,
     "criterion must be 'l1', 'l2', 'mse' or 'fro', got 'l3'"),
    (lambda: PerceptualStyleLoss({"conv5_4": 1}, perceptual_weight=float("inf")), ValueError,
     "perceptual_weight must be a finite non-negative number"),
    (lambda: PerceptualStyleLoss({"conv5_4": 1}, style_weight=True), TypeError, "style_weight must be a number"),
    (lambda: PiqStyleLoss([]), ValueError, "weights must hold at least one number"),
    (lambda: PiqStyleLoss(1.0), TypeError, "weights must be a list of numbers"),
    (lambda: PiqStyleLoss([1.0, -2.0]), ValueError, r"weights\[1\] must be a finite non-negative number"),
    (lambda: PiqStyleLoss(distance="l2"), ValueError, "distance must be 'mse' or 'mae', got 'l2'"),
    (lambda: PiqStyleLoss(reduction="per_sample"), ValueError,
     "reduction must be 'none', 'mean' or 'sum', got 'per_sample'"),
    (lambda: StyleLossLayer(torch.ones(3, dtype=torch.float32)), ValueError,
     "target_feature must have at least 2 dims"),
])
def test_bad_constructor_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_reprs():
    assert "style_weight=1e+10, style_grams=[(1, 4, 4)]" in repr(StyleLoss(_FEATURES))
    assert ("layer_weights={'conv5_4': 1.0}, perceptual_weight=1.0, style_weight=0.0, "
            "criterion='l1'") in repr(PerceptualStyleLoss({"conv5_4": 1}))
    piq = PiqStyleLoss(distance="mae", reduction="sum")
    assert "weights=[1.0], distance='mae', reduction='sum'" in repr(piq)
