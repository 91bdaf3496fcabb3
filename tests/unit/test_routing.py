"""PixArt's token owners by mask order (no ComfyUI needed)."""
import torch

from layermem_core.families.pixart import layer_owners, token_owners


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


def test_a_background_alone_owns_every_token():
    class Background:
        token_mask = torch.ones(3, 5, dtype=torch.bool)

    assert torch.equal(layer_owners([Background()]), torch.zeros(15, dtype=torch.long))
