"""The CUDA paths (issue 23), for the day a GPU is lent: ``benchmarks/gpu_check.py`` runs them with
``pytest -m cuda``. Every test skips without CUDA; none has run on hardware yet (see README)."""

import os
import socket

import pytest
import torch

from maelens import create_model
from maelens.models import set_fused_attention

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def images(n=4, size=32, seed=0):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_forward_on_cuda_equals_the_cpu_forward():
    torch.manual_seed(0)
    model = create_model("tiny").eval()
    set_fused_attention(model, False)
    imgs, noise = images(), torch.rand(4, model.num_patches, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        cpu = model(imgs, 0.75, noise)
        gpu = model.cuda()(imgs.cuda(), 0.75, noise.cuda())
    for a, b in zip(cpu, gpu):  # TF32 off by default for float32 matmuls in torch: close to float32 rounding
        torch.testing.assert_close(b.cpu(), a, rtol=1e-4, atol=1e-4)


def test_bf16_autocast_keeps_the_loss_in_float32_and_close():
    torch.manual_seed(0)
    model = create_model("tiny").cuda().train()
    imgs = images().cuda()
    noise = torch.rand(4, model.num_patches, device="cuda")
    with torch.no_grad():
        reference, _, _ = model(imgs, 0.75, noise)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss, pred, _ = model(imgs, 0.75, noise)
    assert loss.dtype == torch.float32 and pred.dtype == torch.bfloat16
    assert loss.item() == pytest.approx(reference.item(), rel=0.05)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_attention_hooks_see_the_same_maps_with_fused_attention_on_cuda():
    from torch.utils.data import TensorDataset

    from maelens.analysis.attention_dataset import attention_stats

    torch.manual_seed(0)
    model = create_model("tiny").eval()
    data = TensorDataset(images(8), torch.zeros(8, dtype=torch.long))
    set_fused_attention(model, False)
    cpu = attention_stats(model, data, batch_size=4, num_examples=0).to_frame()
    set_fused_attention(model, True)  # the recorder recomputes the softmax from qkv: fused kernels are fine
    gpu = attention_stats(model.cuda(), data, batch_size=4, num_examples=0, device="cuda").to_frame()
    numeric = cpu.select_dtypes("number").columns
    assert (abs(gpu[numeric] - cpu[numeric]) <= 1e-3 + 1e-3 * abs(cpu[numeric])).all().all()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_with_nccl_at_world_size_one_gives_the_plain_gradients():
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from maelens.train.distributed import DistInfo, all_reduce_mean

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    dist.init_process_group("nccl", rank=0, world_size=1, device_id=torch.device("cuda", 0))
    try:
        torch.manual_seed(0)
        plain = create_model("tiny").cuda()
        torch.manual_seed(0)
        wrapped = DistributedDataParallel(create_model("tiny").cuda(), device_ids=[0])
        imgs = images().cuda()
        noise = torch.rand(4, plain.num_patches, device="cuda")
        plain(imgs, 0.75, noise)[0].backward()
        wrapped(imgs, 0.75, noise)[0].backward()
        for a, b in zip(plain.parameters(), wrapped.module.parameters()):
            if a.grad is not None:
                torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-6)
        # the trainer's collectives over NCCL: the mean of one process is its value, the gather its rows
        info = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cuda", 0))
        value = torch.tensor(2.5, device="cuda")
        assert all_reduce_mean(value, info).item() == 2.5
        rows = torch.arange(6.0, device="cuda").view(3, 2)
        dist.all_reduce(rows)  # a real NCCL collective, world size 1
        assert torch.equal(rows, torch.arange(6.0, device="cuda").view(3, 2))
    finally:
        dist.destroy_process_group()


def test_simclr_batched_augment_on_cuda_draws_what_the_cpu_draws():
    from maelens.data.augment import SimCLRAugment

    augment = SimCLRAugment(16, blur_prob=0.0)  # the blur's grouped convolution may round differently
    pixels = images(6, 24).sigmoid()
    cpu = augment(pixels, torch.Generator().manual_seed(3))
    gpu = augment(pixels.cuda(), torch.Generator().manual_seed(3))
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-4)


def test_device_batches_augment_on_cuda_as_on_the_cpu():
    import numpy as np

    from maelens.data import ImageDataset
    from maelens.data.device_batches import device_batches

    pixels = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    data = ImageDataset.from_arrays(pixels, image_size=32, train=True)
    cpu = next(iter(device_batches(data, range(8), 8, generator=torch.Generator().manual_seed(0))))
    gpu = next(iter(device_batches(data, range(8), 8, device="cuda", generator=torch.Generator().manual_seed(0))))
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-3)
