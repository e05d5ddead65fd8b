"""Resumable sampling: the order is a function of (seed, epoch), each item's randomness of (seed, epoch, index)."""

import torch
from torch.utils.data import Dataset

from fourd.data.sampler import KeyedItems, ResumableSampler, SampleKey, SeededItems
from fourd.train.datamodule import VideoDataModule


class RandomItems(Dataset):
    """Items drawn from the global torch generator, as random crops and flips are."""

    def __len__(self) -> int:
        return 22

    def __getitem__(self, index: int) -> dict:
        return {"video": torch.randint(0, 255, (3, 2, 4, 4), dtype=torch.uint8), "skipped": 0, "index": index}


def test_ranks_share_out_one_permutation_per_epoch():
    ranks = [list(ResumableSampler(RandomItems(), num_replicas=2, rank=r, seed=3)) for r in (0, 1)]
    assert [len(keys) for keys in ranks] == [11, 11]
    indices = [k.index for keys in ranks for k in keys]
    assert sorted(indices) == list(range(22))
    assert [k.position for k in ranks[0]] == list(range(11)) and {k.epoch for k in ranks[0]} == {0}


def test_each_epoch_is_shuffled_differently_and_the_same_for_the_same_seed():
    def order(seed: int, epoch: int) -> list[int]:
        sampler = ResumableSampler(RandomItems(), seed=seed)
        sampler.set_epoch(epoch)
        return [k.index for k in sampler]

    first, second = order(3, 0), order(3, 1)
    assert sorted(first) == sorted(second) == list(range(22))
    assert first != list(range(22)) and first != second  # shuffled, and differently per epoch
    assert order(3, 1) == second and order(4, 1) != second  # a function of (seed, epoch) alone


def test_resume_continues_the_epoch_and_rolls_over_when_no_full_batch_is_left():
    sampler = ResumableSampler(RandomItems(), seed=0, batch_size=4)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.resume(2, 8)
    assert list(sampler) == full[8:]
    assert list(sampler) == full  # resuming applies to one pass only
    sampler.resume(2, 20)  # 2 items left, fewer than a batch: the loader would drop them
    assert sampler.epoch == 3 and next(iter(sampler)) == SampleKey(3, 0, next(iter(sampler)).index)


def test_items_are_seeded_by_key_and_leave_the_callers_generator_alone():
    items = SeededItems(RandomItems(), seed=5)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    first = items[SampleKey(1, 7, 4)]
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(first["video"], items[SampleKey(1, 0, 4)]["video"])  # position does not change the item
    assert not torch.equal(first["video"], items[SampleKey(2, 7, 4)]["video"])  # the epoch does
    assert (first["epoch"], first["position"], first["index"]) == (1, 7, 4)


def test_keyed_items_read_the_keys_item_as_it_is_and_tag_its_place_in_the_stream():
    dataset = RandomItems()
    torch.manual_seed(3)
    item = KeyedItems(dataset)[SampleKey(2, 5, 4)]
    torch.manual_seed(3)
    assert torch.equal(item["video"], dataset[4]["video"])  # no seeding of its own: the caller's generators
    assert (item["epoch"], item["position"], item["index"]) == (2, 5, 4)


def batches(module: VideoDataModule) -> list[dict]:
    return list(module.train_dataloader())


def test_data_module_resumes_at_the_next_batch_with_identical_clips():
    fresh = batches(VideoDataModule(RandomItems(), batch_size=4, num_workers=1, seed=1))
    resumed_module = VideoDataModule(RandomItems(), batch_size=4, num_workers=1, seed=1)
    resumed_module.load_state_dict({"epoch": 0, "position": 8, "world_size": 1, "batch_size": 4})
    resumed = batches(resumed_module)
    assert len(fresh) == 5 and len(resumed) == 3
    for a, b in zip(fresh[2:], resumed, strict=True):
        assert torch.equal(a["video"], b["video"]) and torch.equal(a["index"], b["index"])
