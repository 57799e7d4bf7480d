"""The batched loop's two per-step shortcuts against their one-member references.

``MemberBatches`` reads K members' batch orders as one slice per step; ``batched_losses`` takes
the cross-entropy along a strided class axis. Each must give what the single-seed path gives
each member: the same indices (exactly, across reshuffles), the same losses (float tolerance).
"""

from __future__ import annotations

import torch

from worker.compute.evaluation import loss_function
from worker.compute.seed_members import batched_losses
from worker.compute.training import Batches, MemberBatches
from worker.core.spec import DataShape

CPU = torch.device("cpu")


def test_member_batches_give_each_member_its_own_batches_across_reshuffles() -> None:
    seeds, n, batch = [3, 0, 11], 20, 6  # 3 batches an epoch, 2 examples left unused
    own = [Batches(n, batch, s, CPU) for s in seeds]
    together = MemberBatches([Batches(n, batch, s, CPU) for s in seeds])
    for _ in range(10):  # over three reshuffles
        idx = together.next().view(len(seeds), batch)
        for k, b in enumerate(own):
            assert torch.equal(idx[k], b.next())
    assert len({tuple(together.perm[k].tolist()) for k in range(len(seeds))}) == len(seeds)


def test_batched_cross_entropy_is_each_members_own_loss() -> None:
    torch.manual_seed(0)
    k, b, t, c = 4, 5, 3, 7
    for out_shape, y_shape, shape in (
        ((k, b, c), (k, b), DataShape(input_shape=(2,), output_dim=c, task="classification",
                                      n_train=b, n_val=b)),
        ((k, b, t, c), (k, b, t), DataShape(input_shape=(t, 2), output_dim=c,
                                            task="classification", n_train=b, n_val=b,
                                            per_step=True)),
    ):
        out, y = torch.randn(out_shape), torch.randint(0, c, y_shape)
        one = loss_function(shape)
        want = torch.stack([one(out[m], y[m]) for m in range(k)])
        got = batched_losses(shape)(out, y)
        assert got.shape == (k,)
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
        assert len(set(got.tolist())) == k  # four members, four losses
