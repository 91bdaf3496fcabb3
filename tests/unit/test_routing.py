"""Token routing by mask order (no ComfyUI needed)."""
import torch
from comfyui_layer_memory.layermem_core.routing import RoutingPlan, token_owners


def test_newest_mask_wins_older_keeps_visible_part_rest_is_background():
    a = torch.zeros(4, 4, dtype=torch.bool)
    a[0:2, 0:3] = True  # layer 1
    b = torch.zeros(4, 4, dtype=torch.bool)
    b[1:3, 1:3] = True  # layer 2, newer, overlaps layer 1
    owners = token_owners([a, b]).view(4, 4)
    assert owners[0, 0] == 1 and owners[0, 2] == 1
    assert owners[1, 1] == 2 and owners[1, 2] == 2, "newer layer occludes older"
    assert owners[1, 0] == 1, "older layer keeps its still-visible part"
    assert owners[3, 3] == 0 and owners[2, 0] == 0


def test_plan_sorts_tokens_into_contiguous_segments():
    owners = torch.tensor([2, 0, 1, 0, 2, 2, 1, 0])
    plan = RoutingPlan.from_owners(owners)
    assert [s[0] for s in plan.segments] == [0, 1, 2]
    sorted_owners = owners[plan.permutation]
    for owner, start, end in plan.segments:
        assert sorted_owners[start:end].eq(owner).all()
    x = torch.arange(8.0)
    assert torch.equal(x[plan.permutation][plan.inverse], x), "inverse undoes the permutation"


def test_empty_groups_are_skipped():
    plan = RoutingPlan.from_owners(torch.tensor([0, 0, 3, 3]))
    assert [s[0] for s in plan.segments] == [0, 3]
    assert not plan.is_single_group
    assert RoutingPlan.from_owners(torch.zeros(5, dtype=torch.long)).is_single_group
