"""SimCLR under torchrun (two gloo CPU processes): the gathered NT-Xent loss gives every process the global
batch's negatives, and DDP's averaged gradient equals the gradient of that global loss; a SimCLR run
trains end to end with identical weights on both ranks."""

import textwrap

import torch
from torchrun_helper import run_two_processes

from maelens.models.contrastive import nt_xent_loss

WORKER = textwrap.dedent('''
    import os, sys, types, torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import TensorDataset
    from maelens.train import TrainConfig, train
    from maelens.train.distributed import init_distributed
    from maelens.train.methods import get_method

    torch.set_num_threads(1)
    out = sys.argv[1]
    info = init_distributed("cpu")
    rank = info.rank

    # 1. the loss and gradient of a linear projection on 3 images per rank (views a then b)
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 4)
    model.config = types.SimpleNamespace(temperature=0.7)
    views = torch.randn(2, 6, 5, generator=torch.Generator().manual_seed(1))  # (view, image, feature)
    local = torch.cat([views[0, 3 * rank:3 * rank + 3], views[1, 3 * rank:3 * rank + 3]])
    ddp = DistributedDataParallel(model)  # kept alive until backward: its reducer averages the gradients
    loss = get_method("simclr").loss(ddp, local, None, None, info)
    loss.backward()
    torch.save({"loss": loss.detach(), "grad": model.weight.grad}, os.path.join(out, "grad-rank%d.pt" % rank))

    # 2. a SimCLR run through the trainer
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0)).clamp(-2, 2)
    config = TrainConfig(method="simclr", preset="simclr-r18", model_overrides={"img_size": 16}, epochs=1,
                         batch_size=2, warmup_epochs=0, precision="fp32", blr=1e-3, device="cpu",
                         out=os.path.join(out, "run"), quiet=True)
    result = train(config, dataset=TensorDataset(x, torch.zeros(8, dtype=torch.long)))
    torch.save(result.model.state_dict(), os.path.join(out, "weights-rank%d.pt" % rank))
''')


def test_gathered_loss_and_gradient_equal_the_global_batch(tmp_path):
    out = tmp_path / "ddp"
    out.mkdir()
    proc = run_two_processes(WORKER, tmp_path, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the same projection on the 6 images in one process
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 4)
    views = torch.randn(2, 6, 5, generator=torch.Generator().manual_seed(1))
    loss = nt_xent_loss(model(views[0]), model(views[1]), 0.7)
    loss.backward()
    for rank in (0, 1):
        got = torch.load(out / f"grad-rank{rank}.pt", weights_only=True)
        torch.testing.assert_close(got["loss"], loss.detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got["grad"], model.weight.grad, rtol=1e-4, atol=1e-6)
    rank0 = torch.load(out / "weights-rank0.pt", weights_only=True)
    rank1 = torch.load(out / "weights-rank1.pt", weights_only=True)
    # the parameters agree; BatchNorm's running statistics are each process's own on CPU (no SyncBatchNorm)
    running = ("running_mean", "running_var", "num_batches_tracked")
    assert all(torch.equal(rank0[name], rank1[name]) for name in rank0 if not name.endswith(running))
    assert (out / "run" / "checkpoint.pt").is_file()
