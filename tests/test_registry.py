"""The op registry: opcheck of every op, torch.compile(fullgraph=True), CUDA graphs and the
launch count on CUDA."""
import pytest
import torch

from conftest import DEVICES, assert_close
from ganloss_cuda import functional as F
from ganloss_cuda import reference as R

ops = torch.ops.ganloss


def samples(device):
    """(inputs, targets, masks, weights, criterion, reduction) covering the argument space."""
    shapes = [(2, 3, 5, 4), (2, 7), (2, 2, 3, 3)]
    xs = [torch.randn(s, device=device) for s in shapes]
    ys = [torch.randn(s, device=device) for s in shapes]
    masks = [torch.rand(2, 1, 5, 4, device=device), None, torch.rand(2, 2, 3, 3, device=device)]
    yield xs, ys, [], [1.0, 0.5, 2.0], "l1", "mean"
    yield xs, ys, masks, [], "charbonnier", "per_sample"
    yield xs, ys, [], [0.25, 1.0, 1.0], "fro", "sum"
    yield [x.double() for x in xs], [y.double() for y in ys], masks, [], "mse", "mean"
    yield [xs[0].contiguous(memory_format=torch.channels_last)], [ys[0].transpose(2, 3).contiguous().transpose(2, 3)], [], [], "l1", "sum"


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck_forward(device):
    for xs, ys, masks, weights, criterion, reduction in samples(device):
        for input_grad, target_grad in ((False, False), (True, False), (True, True)):
            xr = [x.clone().requires_grad_(input_grad) for x in xs]
            yr = [y.clone().requires_grad_(target_grad) for y in ys]
            args = (xr, yr, masks, weights, criterion, reduction, 1e-3, input_grad, target_grad)
            torch.library.opcheck(ops.feature_loss.default, args)


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck_backward_and_scale(device):
    for xs, ys, masks, weights, criterion, reduction in samples(device):
        loss, stats, dxs, dys = ops.feature_loss(xs, ys, masks, weights, criterion, reduction, 1e-3,
                                                 True, True)
        grad = torch.rand_like(loss) + 0.5
        torch.library.opcheck(ops.feature_loss_backward.default,
                              (grad, stats, xs, ys, masks, weights, criterion, reduction, 1e-3, True, True))
        torch.library.opcheck(ops.feature_loss_scale_grads_.default, (grad, stats, reduction, dxs))


@pytest.mark.parametrize("device", DEVICES)
def test_torch_compile_fullgraph(device):
    torch._dynamo.reset()
    xs = [torch.randn(2, 4, 6, 6, device=device, requires_grad=True),
          torch.randn(2, 8, 3, 3, device=device, requires_grad=True)]
    ys = [torch.randn(2, 4, 6, 6, device=device), torch.randn(2, 8, 3, 3, device=device)]

    def step(xs, ys):
        loss = F.feature_loss(xs, ys, [0.5, 2.0], "mse", "per_sample")
        return (loss * torch.arange(1.0, 3.0, device=device)).sum()

    compiled = torch.compile(step, fullgraph=True)
    out = compiled(xs, ys)
    grads = torch.autograd.grad(out, xs)
    ref = step([x.detach().double().requires_grad_() for x in xs], [y.double() for y in ys])
    assert_close(out, ref, 1e-5, "compiled loss")
    eager = step(xs, ys)
    for g, e in zip(grads, torch.autograd.grad(eager, xs)):
        assert_close(g, e, 1e-6, "compiled grad")


@pytest.mark.cuda
@pytest.mark.parametrize("mode", ["reduce-overhead", "default"])
def test_torch_compile_cuda_modes(mode):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    torch._dynamo.reset()
    xs = [torch.randn(4, 16, 32, 32, device="cuda", requires_grad=True) for _ in range(3)]
    ys = [torch.randn_like(x) for x in xs]
    compiled = torch.compile(lambda xs, ys: F.feature_loss(xs, ys, [1.0, 0.5, 0.25]), mode=mode,
                             fullgraph=True)
    for _ in range(3):  # cudagraph trees record on the later calls
        loss = compiled(xs, ys)
        grads = torch.autograd.grad(loss, xs)
    ref = R.feature_loss(xs, ys, [1.0, 0.5, 0.25])
    assert_close(loss, ref, 1e-5, "loss")
    for g, r in zip(grads, torch.autograd.grad(ref, xs)):
        assert_close(g, r, 1e-5, "grad")


@pytest.mark.cuda
def test_cuda_graph_capture_and_replay():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    xs = [torch.randn(2, 8, 40, 40, device="cuda", requires_grad=True), torch.randn(2, 3, 7, device="cuda", requires_grad=True)]
    ys = [torch.randn_like(x) for x in xs]
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm up on the side stream, as torch.cuda.graphs requires
        for _ in range(2):
            F.feature_loss(xs, ys, [1.0, 3.0], "charbonnier").backward()
    torch.cuda.current_stream().wait_stream(stream)
    for x in xs:
        x.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        loss = F.feature_loss(xs, ys, [1.0, 3.0], "charbonnier")
        loss.backward()
    for _ in range(3):
        with torch.no_grad():
            for x, y in zip(xs, ys):
                x.copy_(torch.randn_like(x))
                y.copy_(torch.randn_like(y))
        graph.replay()
        torch.cuda.synchronize()
        ref = R.feature_loss(xs, ys, [1.0, 3.0], "charbonnier")
        assert_close(loss, ref, 1e-5, "replayed loss")
        for x, r in zip(xs, torch.autograd.grad(ref, xs)):
            assert_close(x.grad, r, 1e-5, "replayed grad")


@pytest.mark.cuda
def test_one_kernel_per_direction():
    """One forward and one backward kernel whatever the number of layers (up to 24 per launch)."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    from torch.profiler import ProfilerActivity, profile

    xs = [torch.randn(2, 4 + i, 16, 16, device="cuda", requires_grad=True) for i in range(12)]
    ys = [torch.randn_like(x) for x in xs]
    F.feature_loss(xs, ys).backward()  # warm up
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        loss = F.feature_loss(xs, ys)
        torch.cuda.synchronize()
        (3 * loss).backward()  # upstream 3: the scale kernel does real work
        torch.cuda.synchronize()
    kernels = [e.name for e in prof.events() if e.device_type.name == "CUDA" and "ganloss" in e.name]
    assert sum("forward_kernel" in k for k in kernels) == 1, kernels
    assert sum("grad_scale_kernel" in k for k in kernels) == 1, kernels
