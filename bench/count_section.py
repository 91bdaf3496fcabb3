"""The op-count and FLOP table: one AddLayer and one DeleteLayer against a txt2img."""

from __future__ import annotations

from . import counting, ops


def count_section(work: ops.Workload, background, top: int) -> dict:
    """Counts of txt2img, AddLayer with `top` layers in memory (MQD on and off) and DeleteLayer."""
    memory = ops.stacked(work, background, top)
    txt, _ = counting.count(ops.txt2img(work))
    add, added = counting.count(ops.add_layer(work, memory))
    obj = work.scene.objects[top - 1]
    pos, mask = work.cond(obj["local_prompt"]), work.mask(obj)
    plain, _ = counting.count(
        lambda: work.h.layer_ops.add_layer(
            memory, work.model, pos, mask, seed=work.seed, use_mqd=False
        )
    )
    delete, details = ops.delete_layer(work, added)
    dele, _ = counting.count(delete)
    return {
        "txt2img": txt.as_dict(),
        f"add_layer_{top}": add.as_dict(),
        f"add_layer_{top}_without_mqd": plain.as_dict(),
        "delete_layer": dele.as_dict(),
        "delete_layer_details": details,
        "layers_in_memory": top,
        "ratios": {
            f"add_layer_{top}_over_txt2img": counting.ratio(add, txt),
            f"add_layer_{top}_without_mqd_over_txt2img": counting.ratio(plain, txt),
            f"delete_over_add_layer_{top}": counting.ratio(dele, add),
        },
    }
