"""Drop-in parity of the adversarial modules and the regularisers: each gives the value and the
gradients of its anchor's code, written out here in float64: BasicSR basicsr/losses/gan_loss.py
(GANLoss, MultiScaleGANLoss, r1_penalty, gradient_penalty_loss), mmagic (gradient_penalty_loss,
r1_gradient_penalty_loss), pix2pixHD models/networks.py (GANLoss), SPADE models/networks/loss.py
(GANLoss), pytorch-CycleGAN-and-pix2pix models/networks.py (GANLoss, cal_gradient_penalty),
taming-transformers taming/modules/losses/vqperceptual.py (hinge_d_loss, vanilla_d_loss,
calculate_adaptive_weight, adopt_weight)."""
import pytest
import torch
import torch.nn.functional as TF
from torch import autograd, nn

from conftest import assert_close
from ganloss_cuda import (CycleGANLoss, GANLoss, Pix2PixHDGANLoss, SPADEGANLoss,
                          adaptive_generator_weight, adopt_weight, gradient_penalty, hinge_d_loss,
                          r1_penalty, vanilla_d_loss)

RTOL = 1e-12


def leaf(*shape, probabilities=False):
    x = torch.randn(*shape, dtype=torch.float64)
    return (torch.sigmoid(x) if probabilities else x).requires_grad_()


def outputs(structure, batch=2, probabilities=False):
    """Discriminator outputs (shapes differ per scale) and the logits tensors among them."""
    if structure == "tensor":
        x = leaf(batch, 1, 7, 9, probabilities=probabilities)
        return x, [x]
    logits = [leaf(batch, 1, 16, 16, probabilities=probabilities),
              leaf(batch, 1, 8, 8, probabilities=probabilities),
              leaf(batch, 1, 3, 5, probabilities=probabilities)]
    if structure == "list":
        return logits, logits
    return [[leaf(batch, 4, 8, 8), x] for x in logits], logits  # list of lists: features, logits


def assert_same(ours, theirs, wrt):
    assert_close(ours, theirs, RTOL, "loss")
    for i, (a, b) in enumerate(zip(
            autograd.grad(ours.sum(), wrt, retain_graph=True, materialize_grads=True),
            autograd.grad(theirs.sum(), wrt, materialize_grads=True))):
        assert_close(a, b, RTOL, f"grad[{i}]")


# BasicSR basicsr/losses/gan_loss.py, GANLoss and MultiScaleGANLoss (mmagic's GANLoss is the
# same with wgan-logistic-ns for wgan_softplus).
def basicsr_gan_loss(gan_type, input, target_is_real, is_disc, real_label_val, fake_label_val,
                     loss_weight):
    if gan_type == "vanilla":
        loss_fn = nn.BCEWithLogitsLoss()
    elif gan_type == "lsgan":
        loss_fn = nn.MSELoss()
    elif gan_type == "wgan":
        loss_fn = lambda input, target: -input.mean() if target else input.mean()
    elif gan_type in ("wgan_softplus", "wgan-logistic-ns"):
        loss_fn = lambda input, target: (TF.softplus(-input).mean() if target
                                         else TF.softplus(input).mean())
    elif gan_type == "hinge":
        loss_fn = nn.ReLU()
    if gan_type in ["wgan", "wgan_softplus", "wgan-logistic-ns"]:
        target_label = target_is_real
    else:
        target_val = real_label_val if target_is_real else fake_label_val
        target_label = input.new_ones(input.size()) * target_val
    if gan_type == "hinge":
        if is_disc:  # for discriminators in hinge-gan
            input = -input if target_is_real else input
            loss = loss_fn(1 + input).mean()
        else:  # for generators in hinge-gan
            loss = -input.mean()
    else:  # other gan types
        loss = loss_fn(input, target_label)
    # loss_weight is always 1.0 for discriminators
    return loss if is_disc else loss * loss_weight


def basicsr_multiscale(gan_type, input, target_is_real, is_disc, *labels_and_weight):
    if isinstance(input, list):
        loss = 0
        for pred_i in input:
            if isinstance(pred_i, list):
                # Only compute GAN loss for the last layer
                # in case of multiscale feature matching
                pred_i = pred_i[-1]
            # Safe operation: 0-dim tensor calling self.mean() does nothing
            loss_tensor = basicsr_gan_loss(gan_type, pred_i, target_is_real, is_disc,
                                           *labels_and_weight).mean()
            loss += loss_tensor
        return loss / len(input)
    return basicsr_gan_loss(gan_type, input, target_is_real, is_disc, *labels_and_weight)


@pytest.mark.parametrize("gan_type", ["vanilla", "lsgan", "wgan", "wgan_softplus",
                                      "wgan-logistic-ns", "hinge"])
@pytest.mark.parametrize("structure,batch", [("tensor", 2), ("list", 2), ("lists", 2),
                                             ("lists", 1)])
def test_basicsr_gan_loss(gan_type, structure, batch):
    input, logits = outputs(structure, batch)
    for real_label, fake_label, loss_weight in ((1.0, 0.0, 1.0), (0.9, 0.1, 0.5)):
        module = GANLoss(gan_type, real_label, fake_label, loss_weight)
        for target_is_real in (True, False):
            for is_disc in (True, False):
                ours = module(input, target_is_real, is_disc=is_disc)
                theirs = basicsr_multiscale(gan_type, input, target_is_real, is_disc, real_label,
                                            fake_label, loss_weight)
                assert ours.shape == ()
                assert_same(ours, theirs, logits)


def test_basicsr_loss_weight_on_the_generator_side_only():
    x = leaf(2, 1, 5, 5)
    for is_disc, factor in ((True, 1.0), (False, 3.0)):
        weighted = GANLoss("lsgan", loss_weight=3.0)(x, True, is_disc)
        assert_close(weighted, factor * GANLoss("lsgan")(x, True, is_disc), RTOL, "loss")


# pix2pixHD models/networks.py, GANLoss (use_lsgan: MSELoss, else BCELoss on sigmoid outputs).
class Pix2PixHDAnchor:
    def __init__(self, use_lsgan=True, target_real_label=1.0, target_fake_label=0.0):
        self.real_label = target_real_label
        self.fake_label = target_fake_label
        self.loss = nn.MSELoss() if use_lsgan else nn.BCELoss()

    def get_target_tensor(self, input, target_is_real):
        return torch.full_like(input, self.real_label if target_is_real else self.fake_label)

    def __call__(self, input, target_is_real):
        if isinstance(input[0], list):
            loss = 0
            for input_i in input:
                pred = input_i[-1]
                target_tensor = self.get_target_tensor(pred, target_is_real)
                loss += self.loss(pred, target_tensor)
            return loss
        else:
            target_tensor = self.get_target_tensor(input[-1], target_is_real)
            return self.loss(input[-1], target_tensor)


@pytest.mark.parametrize("use_lsgan", [True, False])
@pytest.mark.parametrize("structure,batch", [("tensor", 3), ("list", 2), ("lists", 2),
                                             ("lists", 1)])
def test_pix2pixhd_gan_loss(use_lsgan, structure, batch):
    input, logits = outputs(structure, batch, probabilities=not use_lsgan)
    for labels in ((1.0, 0.0), (0.9, 0.1)):
        module, anchor = Pix2PixHDGANLoss(use_lsgan, *labels), Pix2PixHDAnchor(use_lsgan, *labels)
        for target_is_real in (True, False):
            assert_same(module(input, target_is_real), anchor(input, target_is_real), logits)


def test_pix2pixhd_plain_tensor_uses_the_last_sample():
    """pix2pixHD's input[-1] on a plain tensor is the batch's last sample: the other samples
    neither count nor get a gradient."""
    x = leaf(3, 1, 6, 6)
    loss = Pix2PixHDGANLoss()(x, True)
    assert_close(loss, ((x[-1] - 1) ** 2).mean(), RTOL, "loss")
    (grad,) = autograd.grad(loss, x)
    assert grad[:-1].eq(0).all() and grad[-1].ne(0).all()
    scales = [leaf(2, 1, 8, 8), leaf(2, 1, 4, 4)]  # a flat list: the last scale only
    assert_close(Pix2PixHDGANLoss()(scales, False), (scales[-1] ** 2).mean(), RTOL, "loss")


# SPADE models/networks/loss.py, GANLoss.
def spade_loss(gan_mode, input, target_is_real, for_discriminator, real_label, fake_label):
    zero = input.new_zeros(1)
    if gan_mode == "original":  # cross entropy loss
        target_tensor = torch.full_like(input, real_label if target_is_real else fake_label)
        return TF.binary_cross_entropy_with_logits(input, target_tensor)
    elif gan_mode == "ls":
        target_tensor = torch.full_like(input, real_label if target_is_real else fake_label)
        return TF.mse_loss(input, target_tensor)
    elif gan_mode == "hinge":
        if for_discriminator:
            if target_is_real:
                minval = torch.min(input - 1, zero.expand_as(input))
                loss = -torch.mean(minval)
            else:
                minval = torch.min(-input - 1, zero.expand_as(input))
                loss = -torch.mean(minval)
        else:
            assert target_is_real, "The generator's hinge loss must be aiming for real"
            loss = -torch.mean(input)
        return loss
    else:  # wgan
        if target_is_real:
            return -input.mean()
        else:
            return input.mean()


def spade_call(gan_mode, input, target_is_real, for_discriminator, *labels):
    # computing gan loss can be done by computing loss on each output of a multiscale
    # discriminator
    if isinstance(input, list):
        loss = 0
        for pred_i in input:
            if isinstance(pred_i, list):
                pred_i = pred_i[-1]
            loss_tensor = spade_loss(gan_mode, pred_i, target_is_real, for_discriminator, *labels)
            bs = 1 if len(loss_tensor.size()) == 0 else loss_tensor.size(0)
            new_loss = torch.mean(loss_tensor.view(bs, -1), dim=1)
            loss += new_loss
        return loss / len(input)
    else:
        return spade_loss(gan_mode, input, target_is_real, for_discriminator, *labels)


@pytest.mark.parametrize("gan_mode", ["original", "ls", "hinge", "w"])
@pytest.mark.parametrize("structure,batch", [("tensor", 2), ("list", 2), ("lists", 2),
                                             ("lists", 1)])
def test_spade_gan_loss(gan_mode, structure, batch):
    input, logits = outputs(structure, batch)
    for labels in ((1.0, 0.0), (0.9, 0.1)):
        module = SPADEGANLoss(gan_mode, *labels)
        for target_is_real, for_discriminator in ((True, True), (False, True), (True, False),
                                                  (False, False)):
            if gan_mode == "hinge" and (target_is_real, for_discriminator) == (False, False):
                continue  # SPADE asserts (test_adversarial_module_errors)
            ours = module(input, target_is_real, for_discriminator)
            theirs = spade_call(gan_mode, input, target_is_real, for_discriminator, *labels)
            assert ours.shape == theirs.shape == (() if structure == "tensor" else (1,))
            assert_same(ours, theirs, logits)


# pytorch-CycleGAN-and-pix2pix models/networks.py, GANLoss.
def cyclegan_gan_loss(gan_mode, prediction, target_is_real, target_real_label, target_fake_label):
    if gan_mode in ["lsgan", "vanilla"]:
        loss_fn = nn.MSELoss() if gan_mode == "lsgan" else nn.BCEWithLogitsLoss()
        target_tensor = torch.tensor(target_real_label if target_is_real else target_fake_label,
                                     dtype=prediction.dtype)
        return loss_fn(prediction, target_tensor.expand_as(prediction))
    elif gan_mode == "wgangp":
        if target_is_real:
            return -prediction.mean()
        else:
            return prediction.mean()


@pytest.mark.parametrize("gan_mode", ["lsgan", "vanilla", "wgangp"])
@pytest.mark.parametrize("batch", [1, 3])
def test_cyclegan_gan_loss(gan_mode, batch):
    x = leaf(batch, 1, 30, 30)
    for labels in ((1.0, 0.0), (0.9, 0.1)):
        for target_is_real in (True, False):
            assert_same(CycleGANLoss(gan_mode, *labels)(x, target_is_real),
                        cyclegan_gan_loss(gan_mode, x, target_is_real, *labels), [x])


# taming/modules/losses/vqperceptual.py.
def taming_hinge_d_loss(logits_real, logits_fake):
    loss_real = torch.mean(TF.relu(1. - logits_real))
    loss_fake = torch.mean(TF.relu(1. + logits_fake))
    d_loss = 0.5 * (loss_real + loss_fake)
    return d_loss


def taming_vanilla_d_loss(logits_real, logits_fake):
    d_loss = 0.5 * (
        torch.mean(torch.nn.functional.softplus(-logits_real)) +
        torch.mean(torch.nn.functional.softplus(logits_fake)))
    return d_loss


@pytest.mark.parametrize("ours,theirs", [(hinge_d_loss, taming_hinge_d_loss),
                                         (vanilla_d_loss, taming_vanilla_d_loss)])
def test_taming_d_losses(ours, theirs):
    real, fake = leaf(2, 1, 6, 6), leaf(3, 1, 5, 7)  # shapes may differ
    assert_same(ours(real, fake), theirs(real, fake), [real, fake])
    real1, fake1 = leaf(1, 1, 4, 4), leaf(1, 1, 4, 4)
    assert_same(ours(real1, fake1), theirs(real1, fake1), [real1, fake1])


def test_adversarial_module_errors():
    with pytest.raises(ValueError, match=r"gan_type must be 'vanilla', 'lsgan', 'wgan', "
                                         r"'wgan_softplus', 'wgan-logistic-ns' or 'hinge', got "
                                         r"'bce'"):
        GANLoss("bce")
    with pytest.raises(ValueError, match="gan_mode must be 'original', 'ls', 'hinge' or 'w'"):
        SPADEGANLoss("lsgan")
    with pytest.raises(ValueError, match="gan_mode must be 'lsgan', 'vanilla' or 'wgangp'"):
        CycleGANLoss("hinge")
    with pytest.raises(TypeError, match="use_lsgan must be a bool"):
        Pix2PixHDGANLoss("yes")
    with pytest.raises(ValueError, match="loss_weight must be a finite non-negative number"):
        GANLoss("lsgan", loss_weight=-1.0)
    with pytest.raises(ValueError, match="real_label_val must be a finite number"):
        GANLoss("lsgan", real_label_val=float("nan"))
    x64, x32 = torch.randn(2, 1, 4, 4, dtype=torch.float64), torch.randn(2, 1, 4, 4)
    with pytest.raises(TypeError, match=r"input\[1\]\[-1\] has dtype torch.float32 but "
                                        r"input\[0\] has torch.float64"):
        GANLoss("vanilla")([x64, [x64, x32]], True)
    with pytest.raises(ValueError, match=r"input\[1\] is an empty list"):
        GANLoss("vanilla")([x64, []], True)
    with pytest.raises(ValueError, match=r"^input\[-1\] is empty"):
        Pix2PixHDGANLoss()(torch.randn(2, 0), True)
    with pytest.raises(ValueError, match=r"input is a 0-dim tensor"):
        Pix2PixHDGANLoss()(torch.tensor(1.0), True)
    with pytest.raises(ValueError, match="target_is_real must be True for the generator's hinge"):
        SPADEGANLoss("hinge")(x64, False, for_discriminator=False)
    with pytest.raises(TypeError, match="for_discriminator must be a bool"):
        SPADEGANLoss("hinge")(x64, True, for_discriminator=None)
    with pytest.raises(TypeError, match="prediction must be a Tensor, got list"):
        CycleGANLoss("lsgan")([x64], True)
    with pytest.raises(TypeError, match="logits_fake has dtype torch.float32 but logits_real has "
                                        "torch.float64"):
        hinge_d_loss(x64, x32)
    assert "gan_type='hinge', real_label_val=1.0" in repr(GANLoss("hinge"))
    assert "gan_mode='w'" in repr(SPADEGANLoss("w"))


# Regularisers: a tiny conv discriminator with a smooth activation (non-zero second derivative).
def tiny_discriminator():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Softplus(), nn.Conv2d(4, 1, 3)).double()


def images(batch=3):
    return torch.randn(batch, 3, 6, 6, dtype=torch.float64)


def assert_same_penalty(ours, theirs, netD):
    """The penalty and its gradient with respect to D's parameters (double backward)."""
    params = list(netD.parameters())
    assert_same(ours, theirs, params)


# BasicSR basicsr/losses/gan_loss.py.
def basicsr_gradient_penalty_loss(discriminator, real_data, fake_data, weight=None):
    batch_size = real_data.size(0)
    alpha = real_data.new_tensor(torch.rand(batch_size, 1, 1, 1))
    # interpolate between real_data and fake_data
    interpolates = alpha * real_data + (1. - alpha) * fake_data
    interpolates = autograd.Variable(interpolates, requires_grad=True)
    disc_interpolates = discriminator(interpolates)
    gradients = autograd.grad(outputs=disc_interpolates, inputs=interpolates,
                              grad_outputs=torch.ones_like(disc_interpolates), create_graph=True,
                              retain_graph=True, only_inputs=True)[0]
    if weight is not None:
        gradients = gradients * weight
    gradients_penalty = ((gradients.norm(2, dim=1) - 1)**2).mean()
    if weight is not None:
        gradients_penalty /= torch.mean(weight)
    return gradients_penalty


def basicsr_r1_penalty(real_pred, real_img):
    grad_real = autograd.grad(outputs=real_pred.sum(), inputs=real_img, create_graph=True)[0]
    grad_penalty = grad_real.pow(2).view(grad_real.shape[0], -1).sum(1).mean()
    return grad_penalty


# mmagic, gradient_penalty_loss and r1_gradient_penalty_loss.
def mmagic_gradient_penalty_loss(discriminator, real_data, fake_data, mask=None,
                                 norm_mode="pixel"):
    batch_size = real_data.size(0)
    alpha = torch.rand(batch_size, 1, 1, 1).to(real_data)
    interpolates = alpha * real_data + (1. - alpha) * fake_data
    interpolates = autograd.Variable(interpolates, requires_grad=True)
    disc_interpolates = discriminator(interpolates)
    gradients = autograd.grad(outputs=disc_interpolates, inputs=interpolates,
                              grad_outputs=torch.ones_like(disc_interpolates), create_graph=True,
                              retain_graph=True, only_inputs=True)[0]
    if mask is not None:
        gradients = gradients * mask
    if norm_mode == "pixel":
        gradients_penalty = ((gradients.norm(2, dim=1) - 1)**2).mean()
    elif norm_mode == "HWC":
        gradients_penalty = ((gradients.reshape(batch_size, -1).norm(2, dim=1) - 1)**2).mean()
    if mask is not None:
        gradients_penalty /= torch.mean(mask)
    return gradients_penalty


def mmagic_r1_gradient_penalty_loss(discriminator, real_data, mask=None, norm_mode="pixel",
                                    loss_scaler=None):
    batch_size = real_data.shape[0]
    real_data = real_data.clone().requires_grad_()
    disc_pred = discriminator(real_data)
    if loss_scaler:
        disc_pred = loss_scaler.scale(disc_pred)
    gradients = autograd.grad(outputs=disc_pred, inputs=real_data,
                              grad_outputs=torch.ones_like(disc_pred), create_graph=True,
                              retain_graph=True, only_inputs=True)[0]
    if loss_scaler:
        # unscale the gradient
        inv_scale = 1. / loss_scaler.get_scale()
        gradients = gradients * inv_scale
    if mask is not None:
        gradients = gradients * mask
    if norm_mode == "pixel":
        gradients_penalty = ((gradients**2).sum(dim=1)).mean()
    elif norm_mode == "HWC":
        gradients_penalty = gradients.pow(2).reshape(batch_size, -1).sum(dim=1).mean()
    if mask is not None:
        gradients_penalty /= torch.mean(mask)
    return gradients_penalty


# pytorch-CycleGAN-and-pix2pix models/networks.py.
def cal_gradient_penalty(netD, real_data, fake_data, device, type="mixed", constant=1.0,
                         lambda_gp=10.0):
    if lambda_gp > 0.0:
        if type == "real":   # either use real images, fake images, or a linear interpolation
            interpolatesv = real_data
        elif type == "fake":
            interpolatesv = fake_data
        elif type == "mixed":
            alpha = torch.rand(real_data.shape[0], 1, device=device)
            alpha = alpha.expand(real_data.shape[0],
                                 real_data.nelement() // real_data.shape[0]).contiguous().view(
                                     *real_data.shape)
            interpolatesv = alpha * real_data + ((1 - alpha) * fake_data)
        else:
            raise NotImplementedError("{} not implemented".format(type))
        interpolatesv.requires_grad_(True)
        disc_interpolates = netD(interpolatesv)
        gradients = torch.autograd.grad(outputs=disc_interpolates, inputs=interpolatesv,
                                        grad_outputs=torch.ones(disc_interpolates.size()).to(device),
                                        create_graph=True, retain_graph=True, only_inputs=True)
        gradients = gradients[0].view(real_data.size(0), -1)  # flat the data
        gradient_penalty = (((gradients + 1e-16).norm(2, dim=1) - constant) ** 2).mean() * lambda_gp
        return gradient_penalty, gradients
    else:
        return 0.0, None


def seeded(fn, *args, **kwargs):
    torch.manual_seed(7)
    return fn(*args, **kwargs)


@pytest.mark.filterwarnings("ignore:To copy construct from a tensor")  # BasicSR's new_tensor
@pytest.mark.parametrize("with_weight", [False, True])
def test_gradient_penalty_basicsr(with_weight):
    netD, real, fake = tiny_discriminator(), images(), images()
    weight = torch.rand(3, 1, 6, 6, dtype=torch.float64) if with_weight else None
    assert_same_penalty(seeded(gradient_penalty, netD, real, fake, weight),
                        seeded(basicsr_gradient_penalty_loss, netD, real, fake, weight), netD)


@pytest.mark.parametrize("norm_mode,theirs_mode", [("pixel", "pixel"), ("sample", "HWC")])
@pytest.mark.parametrize("with_mask", [False, True])
def test_gradient_penalty_mmagic(norm_mode, theirs_mode, with_mask):
    netD, real, fake = tiny_discriminator(), images(), images()
    mask = (torch.rand(3, 1, 6, 6) > 0.3).double() if with_mask else None
    assert_same_penalty(
        seeded(gradient_penalty, netD, real, fake, mask, norm_mode=norm_mode),
        seeded(mmagic_gradient_penalty_loss, netD, real, fake, mask, norm_mode=theirs_mode), netD)


@pytest.mark.parametrize("interpolation", ["mixed", "real", "fake"])
@pytest.mark.parametrize("batch", [1, 3])
def test_gradient_penalty_cyclegan(interpolation, batch):
    netD, real, fake = tiny_discriminator(), images(batch), images(batch)
    ours = 10.0 * seeded(gradient_penalty, netD, real, fake, norm_mode="sample",
                         interpolation=interpolation, constant=0.5, eps=1e-16)
    theirs, _ = seeded(cal_gradient_penalty, netD, real.clone(), fake.clone(), "cpu",
                       interpolation, constant=0.5, lambda_gp=10.0)
    assert_same_penalty(ours, theirs, netD)


def test_gradient_penalty_alpha_and_scaler():
    netD, real, fake = tiny_discriminator(), images(), images()
    alpha = torch.rand(3, dtype=torch.float64)
    ours = gradient_penalty(netD, real, fake, alpha=alpha,
                            loss_scaler=torch.amp.GradScaler("cpu", init_scale=2.0 ** 16))
    a = alpha.view(3, 1, 1, 1)
    x_hat = (a * real + (1 - a) * fake).requires_grad_()
    (grad,) = autograd.grad(netD(x_hat).sum(), x_hat, create_graph=True)
    assert_same_penalty(ours, ((grad.norm(2, dim=1) - 1) ** 2).mean(), netD)


@pytest.mark.parametrize("batch", [1, 3])
def test_r1_penalty_basicsr(batch):
    netD = tiny_discriminator()
    real_img = images(batch).requires_grad_()
    real_pred = netD(real_img)
    assert_same_penalty(r1_penalty(real_pred, real_img), basicsr_r1_penalty(real_pred, real_img),
                        netD)


@pytest.mark.parametrize("norm_mode,theirs_mode", [("pixel", "pixel"), ("sample", "HWC")])
@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("with_scaler", [False, True])
def test_r1_penalty_mmagic(norm_mode, theirs_mode, with_mask, with_scaler):
    netD, real = tiny_discriminator(), images()
    mask = (torch.rand(3, 1, 6, 6) > 0.3).double() if with_mask else None
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16) if with_scaler else None
    real_img = real.clone().requires_grad_()
    ours = r1_penalty(netD(real_img), real_img, mask, norm_mode, scaler)
    theirs = mmagic_r1_gradient_penalty_loss(netD, real, mask, theirs_mode, scaler)
    assert_same_penalty(ours, theirs, netD)


def test_regularizer_errors():
    netD, real = tiny_discriminator(), images()
    with pytest.raises(ValueError, match="norm_mode must be 'pixel' or 'sample', got 'HWC'"):
        gradient_penalty(netD, real, images(), norm_mode="HWC")
    with pytest.raises(ValueError, match=r"fake_data has shape \[2, 3, 6, 6\] but real_data has "
                                         r"\[3, 3, 6, 6\]"):
        gradient_penalty(netD, real, images(2))
    with pytest.raises(ValueError, match="interpolation must be 'mixed', 'real' or 'fake'"):
        gradient_penalty(netD, real, images(), interpolation="both")
    with pytest.raises(ValueError, match="real_img must require grad"):
        r1_penalty(netD(real), real)


# taming/modules/losses/vqperceptual.py.
def taming_calculate_adaptive_weight(nll_loss, g_loss, last_layer, discriminator_weight):
    nll_grads = torch.autograd.grad(nll_loss, last_layer, retain_graph=True)[0]
    g_grads = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    d_weight = torch.norm(nll_grads) / (torch.norm(g_grads) + 1e-4)
    d_weight = torch.clamp(d_weight, 0.0, 1e4).detach()
    d_weight = d_weight * discriminator_weight
    return d_weight


def taming_adopt_weight(weight, global_step, threshold=0, value=0.):
    if global_step < threshold:
        weight = value
    return weight


def test_adaptive_generator_weight_and_adopt_weight():
    decoder, netD = nn.Conv2d(4, 3, 1).double(), tiny_discriminator()
    z, target = torch.randn(2, 4, 6, 6, dtype=torch.float64), images(2)
    out = decoder(z)
    nll_loss, g_loss = (out - target).abs().mean(), -netD(out).mean()
    ours = adaptive_generator_weight(nll_loss, g_loss, decoder.weight, 0.8)
    theirs = taming_calculate_adaptive_weight(nll_loss, g_loss, decoder.weight, 0.8)
    assert_close(ours, theirs, RTOL, "d_weight")
    assert not ours.requires_grad
    (nll_loss + ours * g_loss).backward()  # the graph was retained for the training step
    for step, threshold in ((0, 0), (4, 5), (5, 5), (6, 5)):
        assert adopt_weight(1.5, step, threshold) == taming_adopt_weight(1.5, step, threshold)
        assert adopt_weight(1.5, step, threshold, 0.25) == taming_adopt_weight(1.5, step,
                                                                               threshold, 0.25)
