"""Drop-in parity: each module gives the value and gradients of the anchor formula it replaces,
written out here from the anchors' code: BasicSR basicsr/losses/basic_loss.py and loss_util.py,
pix2pixHD models/networks.py and pix2pixHD_model.py, SPADE models/pix2pix_model.py."""
import pytest
import torch
import torch.nn.functional as TF

from conftest import DEVICES, assert_close
from ganloss_cuda import CharbonnierLoss, FeatureMatchingLoss, L1Loss, MSELoss, VGGLoss


def basicsr_weight_reduce(loss, weight, reduction):
    """basicsr/losses/loss_util.py: weight_reduce_loss with BasicSR's weighted mean."""
    if weight is not None:
        loss = loss * weight
    if reduction == "none":
        return loss
    if weight is None or reduction == "sum":
        return loss.mean() if reduction == "mean" else loss.sum()
    denom = weight.sum() if weight.size(1) > 1 else weight.sum() * loss.size(1)
    return loss.sum() / denom


def basicsr_pixel(kind, pred, target, weight, reduction, loss_weight, eps=1e-12):
    if kind == "l1":
        loss = TF.l1_loss(pred, target, reduction="none")
    elif kind == "mse":
        loss = TF.mse_loss(pred, target, reduction="none")
    else:
        loss = torch.sqrt((pred - target) ** 2 + eps)
    return loss_weight * basicsr_weight_reduce(loss, weight, reduction)


def grads_match(ours, theirs, inputs, rtol):
    for a, b in zip(torch.autograd.grad(ours, inputs, retain_graph=True),
                    torch.autograd.grad(theirs, inputs)):
        assert_close(a, b, rtol, "grad")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("module,kind", [(L1Loss, "l1"), (MSELoss, "mse"), (CharbonnierLoss, "charbonnier")])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weight_channels", [None, 1, 3])
def test_basicsr_pixel_losses(device, module, kind, reduction, weight_channels):
    pred = torch.randn(2, 3, 9, 11, dtype=torch.float64, device=device, requires_grad=True)
    target = torch.randn(2, 3, 9, 11, dtype=torch.float64, device=device)
    weight = None if weight_channels is None else torch.rand(2, weight_channels, 9, 11, dtype=torch.float64, device=device)
    for loss_weight in (1.0, 0.25):
        loss = module(loss_weight=loss_weight, reduction=reduction)(pred, target, weight)
        ref = basicsr_pixel(kind, pred, target, weight, reduction, loss_weight)
        assert_close(loss, ref, 1e-12, "loss")
        if reduction == "none":
            loss, ref = loss.sum(), ref.sum()
        grads_match(loss, ref, [pred], 1e-12)


def test_basicsr_constructor_and_repr():
    assert "loss_weight=2.0, reduction='sum'" in repr(L1Loss(2.0, "sum"))
    assert "eps=0.001" in repr(CharbonnierLoss(eps=1e-3))
    with pytest.raises(ValueError, match="Unsupported reduction mode: batch"):
        MSELoss(reduction="batch")


def test_charbonnier_eps_and_fp32_default():
    pred = torch.randn(1, 3, 16, 16, requires_grad=True)
    target = torch.randn(1, 3, 16, 16)
    loss = CharbonnierLoss(eps=1e-6)(pred, target)
    ref = basicsr_pixel("charbonnier", pred.double(), target.double(), None, "mean", 1.0, 1e-6)
    assert loss.dtype == torch.float32
    assert_close(loss, ref, 1e-6, "loss")


def vgg_features(device, dtype, batch=2, size=32, requires_grad=True):
    """Shapes of VGG19 relu1_1 .. relu5_1 at a small input size."""
    shapes = [(batch, 64, size, size), (batch, 128, size // 2, size // 2), (batch, 256, size // 4, size // 4),
              (batch, 512, size // 8, size // 8), (batch, 512, size // 16, size // 16)]
    return [torch.randn(s, dtype=dtype, device=device, requires_grad=requires_grad) for s in shapes]


@pytest.mark.parametrize("device", DEVICES)
def test_pix2pixhd_vgg_loss(device):
    x = vgg_features(device, torch.float64)
    y = vgg_features(device, torch.float64)
    loss = VGGLoss()(x, y)
    weights = [1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0]  # pix2pixHD models/networks.py VGGLoss
    ref = sum(w * TF.l1_loss(a, b.detach()) for w, a, b in zip(weights, x, y))
    assert_close(loss, ref, 1e-12, "loss")
    grads_match(loss, ref, x, 1e-12)
    assert all(t.grad is None for t in y)  # real features detached
    with pytest.raises(ValueError, match="x_features has 4 tensors but weights has 5"):
        VGGLoss()(x[:4], y[:4])


def discriminator_outputs(device, num_D=3, n_layers_D=3, batch=1, height=64, width=128, requires_grad=True):
    """pix2pixHD MultiscaleDiscriminator(getIntermFeat=True): per scale n_layers_D + 2 outputs
    (ndf = 64 channels doubling, k=4, pad=2), the last being 1-channel logits."""
    result = []
    for scale in range(num_D):
        h, w = height >> scale, width >> scale
        outs, ch = [], 64
        for layer in range(n_layers_D + 1):
            stride = 2 if layer < n_layers_D else 1
            h, w = (h + 4 - 4) // stride + 1, (w + 4 - 4) // stride + 1
            outs.append(torch.randn(batch, ch, h, w, dtype=torch.float64, device=device, requires_grad=requires_grad))
            ch = min(ch * 2, 512)
        outs.append(torch.randn(batch, 1, h + 1, w + 1, dtype=torch.float64, device=device, requires_grad=requires_grad))
        result.append(outs)
    return result


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("num_D,n_layers_D", [(2, 3), (3, 3), (2, 4)])
def test_pix2pixhd_feature_matching(device, num_D, n_layers_D):
    lambda_feat = 10.0
    fake = discriminator_outputs(device, num_D, n_layers_D)
    real = discriminator_outputs(device, num_D, n_layers_D)
    loss = FeatureMatchingLoss(lambda_feat, num_D=num_D, n_layers_D=n_layers_D)(fake, real)
    # pix2pixHD_model.py: loss_G_GAN_Feat
    feat_weights = 4.0 / (n_layers_D + 1)
    D_weights = 1.0 / num_D
    ref = 0
    for i in range(num_D):
        for j in range(len(fake[i]) - 1):
            ref = ref + D_weights * feat_weights * TF.l1_loss(fake[i][j], real[i][j].detach()) * lambda_feat
    assert_close(loss, ref, 1e-12, "loss")
    params = [t for scale in fake for t in scale[:-1]]
    grads_match(loss, ref, params, 1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_spade_feature_matching(device):
    lambda_feat = 10.0
    fake = discriminator_outputs(device, 2, 4)
    real = discriminator_outputs(device, 2, 4)
    loss = FeatureMatchingLoss(lambda_feat, style="spade")(fake, real)
    # SPADE models/pix2pix_model.py: GAN_Feat_loss
    num_D = len(fake)
    ref = 0
    for i in range(num_D):
        for j in range(len(fake[i]) - 1):
            ref = ref + TF.l1_loss(fake[i][j], real[i][j].detach()) * lambda_feat / num_D
    assert_close(loss, ref, 1e-12, "loss")
    grads_match(loss, ref, [t for scale in fake for t in scale[:-1]], 1e-12)


def test_feature_matching_errors_and_repr():
    fake, real = discriminator_outputs("cpu", 2, 3), discriminator_outputs("cpu", 2, 3)
    with pytest.raises(ValueError, match="pred_fake has 2 scales but num_D is 3"):
        FeatureMatchingLoss(num_D=3)(fake, real)
    with pytest.raises(ValueError, match=r"pred_fake\[1\] has 5 outputs but pred_real\[1\] has 4"):
        FeatureMatchingLoss()(fake, [real[0], real[1][:4]])
    with pytest.raises(ValueError, match="style must be"):
        FeatureMatchingLoss(style="hd")
    assert "style='spade'" in repr(FeatureMatchingLoss(style="spade"))
    logits_only = [[s[-1]] for s in fake]  # a discriminator without getIntermFeat
    with pytest.raises(ValueError, match=r"pred_fake\[0\] has 1 outputs, but a scale needs its "
                                         r"intermediate features before its logits"):
        FeatureMatchingLoss()(logits_only, logits_only)


@pytest.mark.parametrize("device", DEVICES)
def test_amp_style_bf16_features(device):
    """bf16 features (autocast VGG) give an fp32 loss close to the fp32 computation."""
    x = vgg_features(device, torch.bfloat16, requires_grad=False)
    y = vgg_features(device, torch.bfloat16, requires_grad=False)
    x = [t.requires_grad_() for t in x]
    loss = VGGLoss()(x, y)
    ref = VGGLoss()([t.detach().double() for t in x], [t.double() for t in y])
    assert loss.dtype == torch.float32
    assert_close(loss, ref, 1e-5, "loss")
