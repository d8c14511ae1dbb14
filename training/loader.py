"""Training batches straight from a uint8 face tensor on the training device (no DataLoader, no decoding).

Each epoch shuffles the indices with a generator seeded by (seed, epoch), shards them over DDP ranks, drops the
last partial batch, and augments every batch on the device (:func:`training.transforms.train_transform`).
Because the order depends only on (seed, epoch) and the augmentation generator's state is saved in checkpoints,
a run resumed mid-epoch sees exactly the batches an uninterrupted run would.

With ``compile`` the augmentation's arithmetic (everything after its two random draws) runs as one
``torch.compile`` graph; if that fails, one warning line and it runs eagerly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import torch

from fer_core.model_meta import DEFAULT_MEAN, DEFAULT_STD
from training.distributed import DistInfo, shard_indices
from training.transforms import AugmentConfig, augment_draws, augment_from_draws, mix_batch

log = logging.getLogger(__name__)


class TrainBatches:
    """Shuffled, augmented batches of one training split held on the device.

    Args:
        images: uint8 (N, S, S) on the training device.
        targets: int64 (N,) labels or float (N, C) soft targets, same device.
        num_classes: C.
        batch_size: images per step on this rank.
        img_size: model input size.
        seed: base seed for the epoch order and the augmentation generator.
        info: DDP position (shards the order).
        aug: augmentation strengths.
        mixup, cutmix, mix_prob: batch mixing (see :func:`training.transforms.mix_batch`).
        channels_last: return channels_last batches.
        compile: compile the augmentation (``torch.compile``, static shapes).
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, num_classes: int, batch_size: int,
                 img_size: int, seed: int = 0, info: DistInfo | None = None, aug: AugmentConfig | None = None,
                 mixup: float = 0.0, cutmix: float = 0.0, mix_prob: float = 1.0, channels_last: bool = False,
                 mean: float = DEFAULT_MEAN, std: float = DEFAULT_STD, compile: bool = False):
        self.images, self.targets = images, targets
        self.num_classes = num_classes
        self.batch_size, self.img_size = batch_size, img_size
        self.seed, self.info = seed, info or DistInfo()
        self.aug = aug or AugmentConfig()
        self.mixup, self.cutmix, self.mix_prob = mixup, cutmix, mix_prob
        self.channels_last = channels_last
        self.mean, self.std = mean, std
        self.aug_gen = torch.Generator(device=images.device)
        self.aug_gen.manual_seed(seed * 1000 + self.info.rank + 1)
        self.mix_gen = torch.Generator()
        self.mix_gen.manual_seed(seed * 1000 + self.info.rank + 2)
        self.augment: Callable[..., torch.Tensor] = augment_from_draws
        self.compiled = compile
        if compile:
            self.augment = torch.compile(augment_from_draws, mode="default", fullgraph=True, dynamic=False)

    def transform(self, images: torch.Tensor) -> torch.Tensor:
        """Augment one uint8 batch (:func:`training.transforms.train_transform` with this loader's settings)."""
        u, noise = augment_draws(images.shape[0], self.img_size, self.aug, self.aug_gen, images.device)
        args = (images, u, noise, self.img_size, self.aug, self.mean, self.std, self.channels_last)
        try:
            return self.augment(*args)
        except Exception as exc:  # noqa: BLE001 - a compile failure: fall back to eager, once
            if not self.compiled:
                raise
            log.warning("torch.compile of the augmentation failed (%s); augmenting eagerly", type(exc).__name__)
            self.augment, self.compiled = augment_from_draws, False
            return self.augment(*args)

    @property
    def generators(self) -> dict[str, torch.Generator]:
        """The generators whose states a checkpoint must keep."""
        return {"augment": self.aug_gen, "mix": self.mix_gen}

    def per_rank(self) -> int:
        """Images this rank sees per epoch before dropping the last partial batch."""
        n = len(self.images)
        return -(-n // self.info.world_size) if self.info.enabled else n

    def steps_per_epoch(self) -> int:
        """Full batches per epoch (at least one: a split smaller than a batch gives one smaller batch)."""
        return max(1, self.per_rank() // self.batch_size)

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """This rank's index order for ``epoch`` (CPU int64)."""
        gen = torch.Generator().manual_seed(self.seed * 100003 + epoch)
        return shard_indices(torch.randperm(len(self.images), generator=gen), self.info)

    def batches(self, epoch: int, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (inputs (B, 3, H, W) float, targets) for the steps ``start_step..steps_per_epoch()-1``."""
        order = self.epoch_order(epoch).to(self.images.device)
        bs = min(self.batch_size, len(order))
        for step in range(start_step, self.steps_per_epoch()):
            idx = order[step * bs:(step + 1) * bs]
            x = self.transform(self.images[idx])
            y = self.targets[idx]
            if self.mixup > 0 or self.cutmix > 0:
                x, y = mix_batch(x, y, self.num_classes, self.mixup, self.cutmix, self.mix_prob, self.mix_gen)
            yield x, y
