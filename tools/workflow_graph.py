"""A hand-written litegraph serializer: one graph description, both of ComfyUI's formats.

`Graph.ui()` writes the UI format (litegraph version 0.4, as frontend 1.27 saves it: sockets first,
then one socket per widget, widget values in widget order with the "control after generate" value
right after its seed); `Graph.api()` writes the API format a pipeline posts to `/prompt`. Both come
from the same nodes and links, so the two files cannot drift apart. The node types' sockets and
widgets come from a `NodeDef` table (tools/workflow_nodes.py), checked against the real ComfyUI by
tests/e2e/test_workflows_valid.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field

FRONTEND_VERSION = "1.27.10"  # comfyui-frontend-package pinned by ComfyUI 0.3.64
COMFY_VERSION = "0.3.64"
NOTE_TYPES = ("Note", "MarkdownNote")  # frontend-only nodes: on the canvas, never in the API format
SEED_CONTROL = "fixed"  # re-queueing must hit ComfyUI's cache: "randomize" would redo every layer
# Opening view: frontend 1.27 draws titles, widgets and notes only at a zoom of at least
# MinFontSizeForLOD (default 8 px) / NODE_TEXT_SIZE (14 px) = 0.57; below, boxes only.
VIEW = {"scale": 0.65, "offset": [1440, 440]}


# Per node type: socket inputs (name, type, optional), widget inputs (name, type, optional, has
# control_after_generate), outputs (name, type). Order = the node's input_order; the frontend puts
# sockets first, then one socket per widget, and stores widget values in widget order with the
# "control after generate" value right after its seed. The tests compare this table with ComfyUI.

@dataclass(frozen=True)
class NodeDef:
    sockets: tuple = ()
    widgets: tuple = ()
    outputs: tuple = ()
    pack: str | None = "comfy-core"  # cnr_id (registry id) of core nodes; none for this pack's
    display: str = ""  # the title ComfyUI shows (the API format's _meta.title)
    ui_extra: tuple = ()  # values of frontend-only widgets after the others (LoadImage's upload)


@dataclass
class Node:
    id: int
    type: str
    widgets: dict  # name -> value, in the node's widget order
    links: dict  # input name -> (source node id, output slot)
    title: str | None = None
    pos: tuple = (0, 0)
    size: tuple = (300, 100)
    color: tuple | None = None  # (color, bgcolor)
    properties: dict = field(default_factory=dict)


@dataclass
class Group:
    title: str
    bounding: tuple


class Graph:
    """Nodes, links (as node inputs) and groups of one workflow, over a table of node types."""

    def __init__(self, defs: dict[str, NodeDef]):
        self.defs = defs
        self.nodes: list[Node] = []
        self.groups: list[Group] = []

    def add(self, node: Node) -> int:
        assert all(n.id != node.id for n in self.nodes), node.id
        if node.type not in NOTE_TYPES:
            d = self.defs[node.type]
            names = {w[0] for w in d.widgets}
            in_order = [w[0] for w in d.widgets if w[0] in node.widgets]
            assert list(node.widgets) == in_order, (node.type, list(node.widgets))
            assert names == set(node.widgets), (node.type, names ^ set(node.widgets))
            # a widget input may be linked too (its value stays in widgets_values, as the
            # frontend keeps it)
            assert set(node.links) <= {s[0] for s in d.sockets} | names, node.type
        self.nodes.append(node)
        return node.id

    def note(self, id: int, text: str, pos, size, title: str | None = None,
             markdown: bool = True) -> None:
        self.add(Node(id, "MarkdownNote" if markdown else "Note", {"text": text}, {}, title=title,
                      pos=pos, size=size,
                      color=("#432", "#653")))

    # ------------------------------------------------------------ API format
    def api(self) -> dict:
        out = {}
        for n in self._ordered():
            if n.type in NOTE_TYPES:
                continue
            inputs = dict(n.widgets)
            for name, (src, slot) in n.links.items():
                inputs[name] = [str(src), slot]
            title = n.title or self.defs[n.type].display
            out[str(n.id)] = {"inputs": inputs, "class_type": n.type, "_meta": {"title": title}}
        return out

    # ------------------------------------------------------------ UI format
    def _ordered(self) -> list[Node]:
        """Topological order (the frontend's `order`), ties by id; notes first."""
        done: dict[int, int] = {}
        by_id = {n.id: n for n in self.nodes}
        order: list[Node] = []
        pending = sorted(self.nodes, key=lambda n: (n.type not in NOTE_TYPES, n.id))
        while pending:
            for n in pending:
                if all(src in done for src, _ in n.links.values()):
                    done[n.id] = len(order)
                    order.append(n)
                    pending.remove(n)
                    break
            else:
                raise ValueError("cycle in graph")
        assert len(by_id) == len(order)
        return order

    def ui(self, workflow_id: str) -> dict:
        links, in_link, out_links = self._links()
        nodes = [_reorder(self._ui_node(n, index, in_link, out_links))
                 for index, n in enumerate(self._ordered())]
        groups = [{"id": i + 1, "title": g.title, "bounding": list(g.bounding), "color": "#3f789e",
                   "font_size": 24, "flags": {}} for i, g in enumerate(self.groups)]
        return {"id": workflow_id, "revision": 0, "last_node_id": max(n.id for n in self.nodes),
                "last_link_id": len(links), "nodes": nodes, "links": links, "groups": groups,
                "config": {}, "extra": {"ds": dict(VIEW), "frontendVersion": FRONTEND_VERSION},
                "version": 0.4}

    def _links(self) -> tuple[list, dict, dict]:
        """[id, origin_id, origin_slot, target_id, target_slot, type] per link, by target node id;
        the link id of each (node, input) and the link ids of each (node, output slot)."""
        links: list[list] = []
        in_link: dict[tuple[int, str], int] = {}
        out_links: dict[tuple[int, int], list[int]] = {}
        for n in sorted(self.nodes, key=lambda n: n.id):
            if n.type in NOTE_TYPES:
                continue
            d = self.defs[n.type]
            sockets = [s[0] for s in d.sockets] + [w[0] for w in d.widgets]  # the input slots
            for name in sorted(n.links, key=sockets.index):
                src, slot = n.links[name]
                src_type = self.defs[self._node(src).type].outputs[slot][1]
                link_id = len(links) + 1
                links.append([link_id, src, slot, n.id, sockets.index(name), src_type])
                in_link[(n.id, name)] = link_id
                out_links.setdefault((src, slot), []).append(link_id)
        return links, in_link, out_links

    def _ui_node(self, n: Node, index: int, in_link: dict, out_links: dict) -> dict:
        entry = {"id": n.id, "type": n.type, "pos": list(n.pos), "size": list(n.size), "flags": {},
                 "order": index, "mode": 0, "inputs": [], "outputs": []}
        if n.title:
            entry["title"] = n.title
        if n.color:
            entry["color"], entry["bgcolor"] = n.color
        if n.type in NOTE_TYPES:
            entry["properties"] = {}
            entry["widgets_values"] = [n.widgets["text"]]
            return entry
        d = self.defs[n.type]
        for name, typ, optional in d.sockets:
            link = {"link": in_link.get((n.id, name))}
            entry["inputs"].append(_input_slot(name, typ, optional, link))
        for name, typ, optional, _control in d.widgets:
            widget = {"widget": {"name": name}, "link": in_link.get((n.id, name))}
            entry["inputs"].append(_input_slot(name, typ, optional, widget))
        for slot_index, (name, typ) in enumerate(d.outputs):
            entry["outputs"].append({"localized_name": name, "name": name, "type": typ,
                                     "slot_index": slot_index,
                                     "links": out_links.get((n.id, slot_index), [])})
        props = {"Node name for S&R": n.type}
        if d.pack:
            props.update({"cnr_id": d.pack, "ver": COMFY_VERSION})
        props.update(n.properties)
        entry["properties"] = props
        values = []
        for name, _typ, _optional, control in d.widgets:
            values.append(n.widgets[name])
            if control:
                values.append(SEED_CONTROL)
        entry["widgets_values"] = values + list(d.ui_extra)
        return entry

    def _node(self, id: int) -> Node:
        return next(n for n in self.nodes if n.id == id)


_KEY_ORDER = ["id", "type", "pos", "size", "flags", "order", "mode", "inputs", "outputs", "title",
              "properties",
              "widgets_values", "color", "bgcolor"]


def _reorder(entry: dict) -> dict:
    """The frontend's key order (title before properties), so that a saved file diffs cleanly."""
    return {k: entry[k] for k in _KEY_ORDER if k in entry}


def _input_slot(name: str, typ: str, optional: bool, rest: dict) -> dict:
    slot = {"localized_name": name, "name": name}
    if optional:
        slot["shape"] = 7  # RenderShape.HollowCircle: optional input
    slot["type"] = typ
    slot.update(rest)
    return slot

